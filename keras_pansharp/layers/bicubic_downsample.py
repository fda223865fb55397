"""PyTorch-exact bicubic downsampling by an even integer factor."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_pansharp.layers.replicate_padding import replicate_pad

# Keys' cubic convolution kernel with a = -0.75 (PyTorch's bicubic), sampled
# at distances 1.5, 0.5, 0.5, 1.5: the four taps of a sample that falls
# half-way between two input pixels, which is where every output pixel of an
# even-factor downsampling with `align_corners=False` falls.
_A = -0.75


def _cubic(t: float) -> float:
    t = abs(t)
    if t <= 1:
        return (_A + 2) * t**3 - (_A + 3) * t**2 + 1
    if t < 2:
        return _A * t**3 - 5 * _A * t**2 + 8 * _A * t - 4 * _A
    return 0.0


BICUBIC_HALF_TAPS = np.asarray([_cubic(d) for d in (1.5, 0.5, 0.5, 1.5)])


@keras.saving.register_keras_serializable(package="keras_pansharp")
class BicubicDownsample(keras.layers.Layer):
    """Bicubic downsampling exactly as PyTorch's `F.interpolate`.

    `F.interpolate(x, scale_factor=1 / factor, mode="bicubic",
    align_corners=False)` (no antialiasing, the PyTorch default) for an even
    `factor`: output pixel `i` samples the input at `factor * i + factor / 2
    - 0.5`, half-way between two pixels, so it is a separable 4-tap filter
    `[-0.09375, 0.59375, 0.59375, -0.09375]` (Keys' kernel, `a = -0.75`)
    applied with stride `factor`, borders clamped (replicated). PSCINN uses
    it for its PAN pyramid (factors 2 and 4). Weightless.

    Args:
        factor: even downsampling factor (2, 4, ...).
        **kwargs: standard `keras.layers.Layer` arguments.

    Call args:
        inputs: `(B, H, W, C)` with `H` and `W` multiples of `factor`.

    Returns:
        `(B, H / factor, W / factor, C)`.

    Example:
    >>> x = np.ones((1, 8, 8, 1), "float32")
    >>> tuple(BicubicDownsample(2)(x).shape)
    (1, 4, 4, 1)
    """

    def __init__(self, factor: int = 2, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        if isinstance(factor, bool) or int(factor) != factor or factor < 2:
            raise ValueError(
                f"BicubicDownsample: `factor` must be an even integer >= 2, "
                f"got {factor!r}"
            )
        if factor % 2:
            raise ValueError(
                f"BicubicDownsample: only even factors are supported, got {factor}"
            )
        self.factor = int(factor)
        self._pad = max(0, 2 - self.factor // 2)
        self._start = self.factor // 2 - 2 + self._pad

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(
                "BicubicDownsample expects a (B, H, W, C) input with known C, "
                f"got {input_shape}"
            )
        self._channels = int(input_shape[-1])
        self.built = True

    def call(self, inputs):
        x = replicate_pad(inputs, self._pad)
        s = self._start
        if s:
            x = x[:, s:, s:, :]
        taps = ops.cast(BICUBIC_HALF_TAPS, x.dtype)
        c = self._channels
        k_h = ops.tile(ops.reshape(taps, (4, 1, 1, 1)), (1, 1, c, 1))
        k_w = ops.tile(ops.reshape(taps, (1, 4, 1, 1)), (1, 1, c, 1))
        # Each pass at stride 1, then every `factor`-th row / column: the same
        # numbers as a strided pass (TensorFlow's CPU depthwise kernel refuses
        # unequal strides such as (factor, 1), Keras 3.15.1).
        f = self.factor
        x = ops.depthwise_conv(x, k_h, strides=1, padding="valid")[:, ::f]
        return ops.depthwise_conv(x, k_w, strides=1, padding="valid")[:, :, ::f]

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        f = self.factor
        return (b, None if h is None else h // f, None if w is None else w // f, c)

    def get_config(self):
        config = super().get_config()
        config.update({"factor": self.factor})
        return config
