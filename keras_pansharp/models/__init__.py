"""keras_pansharp.models."""
