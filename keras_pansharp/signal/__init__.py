"""keras_pansharp.signal."""
