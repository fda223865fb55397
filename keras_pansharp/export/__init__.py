"""keras_pansharp.export: serving formats (TensorFlow SavedModel)."""

from keras_pansharp.export.saved_model import METADATA_FILE, export_saved_model
