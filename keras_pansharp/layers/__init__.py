"""keras_pansharp.layers."""
