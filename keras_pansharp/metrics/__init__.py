"""keras_pansharp.metrics."""
