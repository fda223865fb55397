"""Replicate ("edge") padding of the two spatial dims, on every backend."""

from __future__ import annotations

import keras
from keras import ops


def replicate_pad(x, padding: int):
    """Pad a `(B, H, W, C)` tensor by `padding` edge pixels on each side.

    The function behind `ReplicatePadding2D` (slicing and concatenation, so
    it works on every backend and with dynamic sizes).
    """
    p = int(padding)
    if p == 0:
        return x
    top = ops.repeat(x[:, :1], p, axis=1)
    bottom = ops.repeat(x[:, -1:], p, axis=1)
    x = ops.concatenate([top, x, bottom], axis=1)
    left = ops.repeat(x[:, :, :1], p, axis=2)
    right = ops.repeat(x[:, :, -1:], p, axis=2)
    return ops.concatenate([left, x, right], axis=2)


@keras.saving.register_keras_serializable(package="keras_pansharp")
class ReplicatePadding2D(keras.layers.Layer):
    """Pad height and width by repeating the border pixels.

    PyTorch's `F.pad(x, (p, p, p, p), mode="replicate")` / NumPy's
    `mode="edge"`. PNN uses it (PanCollection `val_step`) so that its
    unpadded ("valid") convolutions give an output as large as the input.
    Implemented with slicing and concatenation, so it works on every Keras
    backend (TensorFlow's `tf.pad` has no edge mode) and with dynamic sizes.

    Args:
        padding: pixels added on each of the four sides (int >= 0).
        **kwargs: standard `keras.layers.Layer` arguments.

    Call args:
        inputs: `(B, H, W, C)` tensor, channels last.

    Returns:
        `(B, H + 2 * padding, W + 2 * padding, C)` tensor.

    Example:
    >>> import numpy as np
    >>> ReplicatePadding2D(2)(np.zeros((1, 4, 4, 3), "float32")).shape
    (1, 8, 8, 3)
    """

    def __init__(self, padding: int = 1, **kwargs):
        super().__init__(**kwargs)
        if int(padding) != padding or padding < 0:
            raise ValueError(
                f"ReplicatePadding2D: `padding` must be an integer >= 0, got {padding!r}"
            )
        self.padding = int(padding)

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                "ReplicatePadding2D expects a 4-D (B, H, W, C) input, "
                f"got shape {input_shape}"
            )
        self.built = True

    def call(self, inputs):
        return replicate_pad(inputs, self.padding)

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        p = 2 * self.padding
        return (b, None if h is None else h + p, None if w is None else w + p, c)

    def get_config(self):
        config = super().get_config()
        config.update({"padding": self.padding})
        return config
