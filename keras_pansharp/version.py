"""Version of keras_pansharp."""

__version__ = "0.1.0"
