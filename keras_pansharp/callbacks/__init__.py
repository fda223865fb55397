"""keras_pansharp.callbacks."""
