"""`python -m keras_pansharp.cli`: the `keras-pansharp` command."""

from keras_pansharp.cli import run

run()
