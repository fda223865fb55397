"""MS -> PAN-size upsampling layers: the toolbox's `interp23tap` and bicubic."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_pansharp.signal.kernels import interp23tap_kernel

# Polyphase form of one x2 stage of interp23tap (REFERENCE §4).
#
# A stage places the n input samples x[i] of one axis at phase p of a 2n-long
# zero array u (u[2i + p] = x[i]) and correlates u with the 23-tap kernel h
# (centre h[11] = 1, zero at every other even offset) with circular boundaries.
# Output samples at the input phase are the inputs themselves; the others are
#     o[i] = sum_{t=-5..6} h[10 + 2t] * x[(i + t) mod n]
# (a 12-tap circular filter on the *original* samples), and
#     p = 1 (first stage):  y[2i] = o[i - 1],  y[2i + 1] = x[i]
#     p = 0 (second stage): y[2i] = x[i],      y[2i + 1] = o[i]
# which is exactly the zero-insertion algorithm without its 50 % zero work.
_PAD_BEFORE = 5
_PAD_AFTER = 6


def _polyphase_taps() -> np.ndarray:
    h = interp23tap_kernel()
    return np.asarray([h[10 + 2 * t] for t in range(-5, 7)], dtype=np.float64)


def _circular_pad(x, axis: int):
    """Pad `x` circularly by 5 before and 6 after along `axis` (any length)."""
    n = ops.shape(x)[axis]
    idx = ops.mod(ops.arange(-_PAD_BEFORE, n + _PAD_AFTER, dtype="int32"), n)
    return ops.take(x, idx, axis=axis)


def _interleave(a, b, axis: int):
    """Interleave `a` and `b` along `axis` (1 or 2 of a rank-4 tensor)."""
    shape = ops.shape(a)
    stacked = ops.stack([a, b], axis=axis + 1)
    new_shape = list(shape)
    new_shape[axis] = shape[axis] * 2
    new_shape[0] = -1
    return ops.reshape(stacked, new_shape)


class _RatioUpsample(keras.layers.Layer):
    """Shared shape and config logic of the upsamplers (`self.ratio`)."""

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        h = None if h is None else h * self.ratio
        w = None if w is None else w * self.ratio
        return (b, h, w, c)

    def get_config(self):
        config = super().get_config()
        config.update({"ratio": self.ratio})
        return config


@keras.saving.register_keras_serializable(package="keras_pansharp")
class Interp23Tap(_RatioUpsample):
    """The toolbox's 23-tap polynomial interpolator (`interp23tap`).

    Upsamples a low-resolution multispectral image by `ratio` (4 = two x2
    stages, or 2) exactly like the reference MATLAB toolbox: each x2 stage
    places the samples on a grid twice as large (first stage at 0-based odd
    rows/columns, later stages at even ones) and filters rows and columns
    with the 23-tap kernel using **circular** boundaries (REFERENCE §4). For
    ratio 4, `up[:, 2::4, 2::4, :] == inputs` exactly.

    The layer uses an equivalent polyphase formulation (a 12-tap depthwise
    filter on the original samples followed by interleaving), so it does no
    work on inserted zeros. It has no weights; spatial dimensions may be
    dynamic and of any size (circular wrapping works even for 1-pixel inputs).
    Computation happens in the input's floating dtype (use float64 inputs for
    toolbox-exact results; float64 under JAX needs `jax_enable_x64`).

    Args:
        ratio: upsampling factor, 2 or 4.
        **kwargs: standard `keras.layers.Layer` arguments.

    Input shape:
        `(batch, h, w, channels)`, floating point.

    Output shape:
        `(batch, ratio * h, ratio * w, channels)`.

    Example:
    >>> ms = np.random.rand(1, 16, 16, 4).astype("float32")
    >>> up = Interp23Tap(ratio=4)(ms)
    >>> tuple(up.shape)
    (1, 64, 64, 4)
    """

    def __init__(self, ratio: int = 4, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        if ratio not in (2, 4):
            raise ValueError(f"Interp23Tap: `ratio` must be 2 or 4, got {ratio!r}.")
        self.ratio = int(ratio)
        self._taps = _polyphase_taps()

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                "Interp23Tap expects a rank-4 input (batch, h, w, channels); "
                f"got shape {tuple(input_shape)}."
            )
        if input_shape[-1] is None:
            raise ValueError(
                "Interp23Tap needs a known channel dimension; got shape "
                f"{tuple(input_shape)}."
            )
        self.channels = int(input_shape[-1])
        self.built = True

    def _stage_axis(self, x, axis: int, phase: int, taps_h, taps_w):
        channels = x.shape[-1] if x.shape[-1] is not None else self.channels
        padded = _circular_pad(x, axis)
        kernel = taps_h if axis == 1 else taps_w
        kernel = ops.tile(kernel, (1, 1, channels, 1))
        odd = ops.depthwise_conv(padded, kernel, strides=1, padding="valid")
        if phase == 1:
            # y[2i] = o[i - 1]  ->  roll o by one sample.
            odd = ops.roll(odd, shift=1, axis=axis)
            return _interleave(odd, x, axis)
        return _interleave(x, odd, axis)

    def call(self, inputs):
        x = ops.convert_to_tensor(inputs)
        dtype = x.dtype
        if not _is_float(dtype):
            raise ValueError(
                f"Interp23Tap expects a floating-point input, got dtype {dtype}."
            )
        taps = ops.convert_to_tensor(self._taps, dtype=dtype)
        taps_h = ops.reshape(taps, (12, 1, 1, 1))
        taps_w = ops.reshape(taps, (1, 12, 1, 1))
        n_stages = self.ratio // 2
        for stage in range(n_stages):
            phase = 1 if stage == 0 else 0
            x = self._stage_axis(x, 1, phase, taps_h, taps_w)
            x = self._stage_axis(x, 2, phase, taps_h, taps_w)
        return x


def _is_float(dtype) -> bool:
    return "float" in keras.backend.standardize_dtype(dtype)


@keras.saving.register_keras_serializable(package="keras_pansharp")
class BicubicUpsample(_RatioUpsample):
    """Bicubic upsampling by `ratio` (`keras.ops.image.resize`, no antialias).

    The paper's own pipeline makes its upsampled MS with bicubic
    interpolation; this layer offers that choice inside a model. It is a thin
    wrapper of `keras.ops.image.resize(..., interpolation="bicubic")`, so its
    values are those of the backend's bicubic resize (half-pixel centres,
    Keys cubic a = -0.5 on TensorFlow and JAX); it is *not* the toolbox's
    interpolator (use `Interp23Tap` for that).

    Args:
        ratio: upsampling factor (positive integer), default 4.
        **kwargs: standard `keras.layers.Layer` arguments.

    Input shape:
        `(batch, h, w, channels)`.

    Output shape:
        `(batch, ratio * h, ratio * w, channels)`.

    Example:
    >>> ms = np.random.rand(1, 16, 16, 4).astype("float32")
    >>> tuple(BicubicUpsample(4)(ms).shape)
    (1, 64, 64, 4)
    """

    def __init__(self, ratio: int = 4, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        if int(ratio) != ratio or ratio < 1:
            raise ValueError(
                f"BicubicUpsample: `ratio` must be a positive integer, got {ratio!r}."
            )
        self.ratio = int(ratio)

    def build(self, input_shape):
        self.built = True

    def call(self, inputs):
        shape = ops.shape(inputs)
        size = (shape[1] * self.ratio, shape[2] * self.ratio)
        return ops.image.resize(
            inputs, size, interpolation="bicubic", data_format="channels_last"
        )
