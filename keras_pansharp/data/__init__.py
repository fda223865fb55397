"""keras_pansharp.data."""
