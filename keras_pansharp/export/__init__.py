"""keras_pansharp.export."""
