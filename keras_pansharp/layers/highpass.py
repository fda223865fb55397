"""High-pass filter used by PanNet: the image minus its box-filtered copy."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_pansharp")
class HighPass(keras.layers.Layer):
    """Spatial high-pass: `x - box_filter(x)`, band by band.

    This is PanNet's input pre-processing as in the PanCollection reference
    code (`get_edge`: `x - cv2.boxFilter(x, -1, (5, 5))`): a normalised
    `size x size` mean filter with OpenCV's default border
    (`BORDER_REFLECT_101`, i.e. mirror without repeating the edge pixel,
    NumPy's `mode="reflect"`, SciPy's `mode="mirror"`), subtracted from the
    input. It has no weights.

    Args:
        size: odd box size in pixels (default 5, the reference value). The
            input must be larger than `size // 2` in both spatial dims.
        **kwargs: standard `keras.layers.Layer` arguments.

    Call args:
        inputs: `(B, H, W, C)` float tensor, channels last.

    Returns:
        `(B, H, W, C)` high-pass tensor, same dtype.

    Example:
    >>> import numpy as np
    >>> x = np.random.rand(1, 16, 16, 4).astype("float32")
    >>> HighPass(5)(x).shape
    (1, 16, 16, 4)
    """

    def __init__(self, size: int = 5, **kwargs):
        super().__init__(**kwargs)
        if int(size) != size or size < 1 or size % 2 != 1:
            raise ValueError(
                f"HighPass: `size` must be an odd integer >= 1, got {size!r}"
            )
        self.size = int(size)

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                f"HighPass expects a 4-D (B, H, W, C) input, got shape {input_shape}"
            )
        self.built = True

    def call(self, inputs):
        p = self.size // 2
        if p == 0:
            return ops.zeros_like(inputs)
        padded = ops.pad(inputs, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect")
        low = ops.average_pool(padded, pool_size=self.size, strides=1, padding="valid")
        return inputs - ops.cast(low, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"size": self.size})
        return config
