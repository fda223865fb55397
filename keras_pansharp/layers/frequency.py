"""Weightless Fourier-domain layers: 2-D real FFT to amplitude/phase and back.

These are the frequency-domain primitives of the spatial-frequency
pan-sharpening networks (`SFDI`). They follow PyTorch's
`torch.fft.rfft2(x, norm="backward")` / `torch.fft.irfft2(z, s=(H, W),
norm="backward")` conventions over the two spatial axes of a channels-last
tensor: the forward transform is unnormalised, the inverse divides by
`H * W`, the last spatial axis keeps its `W // 2 + 1` non-negative
frequencies, and the inverse first applies the full inverse FFT over the
rows and then the complex-to-real inverse over the columns (so the
imaginary parts of the zero and Nyquist columns are ignored, as in PyTorch
and NumPy). They are built on `keras.ops.rfft` / `ops.fft` / `ops.irfft`
(real and imaginary parts as a pair), so they run on every backend and
export to a TensorFlow SavedModel.
"""

from __future__ import annotations

import keras
from keras import ops


def _to_channels_first(x):
    # (B, H, W, C) -> (B, C, H, W): the FFT ops transform the last axis.
    return ops.transpose(x, (0, 3, 1, 2))


def _to_channels_last(x):
    return ops.transpose(x, (0, 2, 3, 1))


def _swap_last_two(x):
    return ops.transpose(x, (0, 1, 3, 2))


def rfft2_channels_last(x):
    """`torch.fft.rfft2` over axes 1, 2 of a `(B, H, W, C)` real tensor.

    Returns:
        `(real, imag)`, each `(B, H, W // 2 + 1, C)`.
    """
    real, imag = ops.rfft(_to_channels_first(x))  # along W: (B, C, H, Wr)
    real, imag = ops.fft((_swap_last_two(real), _swap_last_two(imag)))  # along H
    # (B, C, Wr, H) -> (B, H, Wr, C)
    return ops.transpose(real, (0, 3, 2, 1)), ops.transpose(imag, (0, 3, 2, 1))


def irfft2_channels_last(real, imag, width):
    """`torch.fft.irfft2(s=(H, width))` over axes 1, 2 of `(B, H, Wr, C)` parts.

    Returns:
        `(B, H, width, C)` real tensor.
    """
    # (B, H, Wr, C) -> (B, C, Wr, H): inverse full FFT over H first, written
    # as conj(fft(conj(z))) / H (keras.ops has no 1-D inverse complex FFT).
    real = ops.transpose(real, (0, 3, 2, 1))
    imag = ops.transpose(imag, (0, 3, 2, 1))
    real, imag = ops.fft((real, -imag))
    rows = ops.cast(ops.shape(real)[-1], real.dtype)
    real, imag = real / rows, -imag / rows
    # (B, C, Wr, H) -> (B, C, H, Wr); complex-to-real over W.
    out = ops.irfft((_swap_last_two(real), _swap_last_two(imag)), fft_length=width)
    return _to_channels_last(out)


def _fft_dtype(x):
    # keras.ops.rfft / irfft take float32 or float64 only (mixed precision
    # computes the transform in float32).
    dtype = keras.backend.standardize_dtype(x.dtype)
    return dtype if dtype in ("float32", "float64") else "float32"


def _safe_magnitude(real, imag):
    # |z| with a zero (not NaN) gradient at z = 0, like torch.abs on complex.
    sq = real * real + imag * imag
    positive = sq > 0
    return ops.where(positive, ops.sqrt(ops.where(positive, sq, 1.0)), 0.0)


def _safe_angle(real, imag):
    # atan2(imag, real) with a zero (not NaN) gradient at z = 0; angle(0) = 0.
    zero = ops.logical_and(ops.equal(real, 0.0), ops.equal(imag, 0.0))
    return ops.where(
        zero, 0.0, ops.arctan2(imag, ops.where(zero, ops.ones_like(real), real))
    )


@keras.saving.register_keras_serializable(package="keras_pansharp")
class FourierAmplitudePhase(keras.layers.Layer):
    """Amplitude and phase of the 2-D real FFT of a feature map.

    Computes `z = rfft2(x + epsilon)` over the two spatial axes (unnormalised,
    PyTorch's `norm="backward"`), then `|z|` and `angle(z)` (in `(-pi, pi]`).
    SFIIN / SFDI adds `epsilon = 1e-8` before the transform.

    Args:
        epsilon: constant added to the input before the transform.
        **kwargs: standard `keras.layers.Layer` arguments.

    Call args:
        inputs: `(B, H, W, C)` real tensor.

    Returns:
        `[amplitude, phase]`, each `(B, H, W // 2 + 1, C)`.

    Example:
    >>> import numpy as np
    >>> x = np.random.rand(1, 8, 6, 2).astype("float32")
    >>> amp, pha = FourierAmplitudePhase()(x)
    >>> tuple(amp.shape), tuple(pha.shape)
    ((1, 8, 4, 2), (1, 8, 4, 2))
    """

    def __init__(self, epsilon: float = 1e-8, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                f"{type(self).__name__} expects a 4-D (B, H, W, C) input, got "
                f"shape {input_shape}"
            )
        self.built = True

    def call(self, inputs):
        x = ops.cast(inputs, _fft_dtype(inputs))
        real, imag = rfft2_channels_last(x + self.epsilon)
        amp, pha = _safe_magnitude(real, imag), _safe_angle(real, imag)
        return [ops.cast(amp, inputs.dtype), ops.cast(pha, inputs.dtype)]

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        shape = (b, h, None if w is None else w // 2 + 1, c)
        return [shape, shape]

    def get_config(self):
        config = super().get_config()
        config.update({"epsilon": self.epsilon})
        return config


@keras.saving.register_keras_serializable(package="keras_pansharp")
class InverseFourierAmplitudePhase(keras.layers.Layer):
    """`|irfft2(amplitude * exp(i * phase))|` back to the spatial domain.

    The spectrum is `real = A cos(P) + epsilon`, `imag = A sin(P) + epsilon`
    and `epsilon` is added once more to the real part (SFIIN's
    `torch.complex(real, imag) + 1e-8`); the inverse real FFT has PyTorch's
    `norm="backward"` (divides by `H * W`) and output size `s=(H, W)` taken
    from the `like` tensor, and the absolute value of the result is returned.

    Args:
        epsilon: the constant of the reference (`1e-8`).
        **kwargs: standard `keras.layers.Layer` arguments.

    Call args:
        amplitude: `(B, H, W // 2 + 1, C)`.
        phase: `(B, H, W // 2 + 1, C)`.
        like: `(B, H, W, ...)` tensor giving the output spatial size (`W`
            cannot be recovered from `W // 2 + 1`).

    Returns:
        `(B, H, W, C)` non-negative real tensor.

    Example:
    >>> import numpy as np
    >>> x = np.random.rand(1, 8, 6, 2).astype("float32")
    >>> amp, pha = FourierAmplitudePhase(epsilon=0.0)(x)
    >>> y = InverseFourierAmplitudePhase(epsilon=0.0)(amp, pha, x)
    >>> bool(np.allclose(y, x, atol=1e-5))
    True
    """

    def __init__(self, epsilon: float = 1e-8, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, amplitude_shape, phase_shape=None, like_shape=None):
        if len(amplitude_shape) != 4:
            raise ValueError(
                f"{type(self).__name__} expects 4-D (B, H, W // 2 + 1, C) "
                f"inputs, got shape {amplitude_shape}"
            )
        self.built = True

    def call(self, amplitude, phase, like):
        dtype = amplitude.dtype
        amplitude = ops.cast(amplitude, _fft_dtype(amplitude))
        phase = ops.cast(phase, amplitude.dtype)
        real = amplitude * ops.cos(phase) + 2.0 * self.epsilon
        imag = amplitude * ops.sin(phase) + self.epsilon
        width = ops.shape(like)[2]
        return ops.cast(ops.abs(irfft2_channels_last(real, imag, width)), dtype)

    def compute_output_shape(self, amplitude_shape, phase_shape=None, like_shape=None):
        width = None if like_shape is None else like_shape[2]
        return (amplitude_shape[0], amplitude_shape[1], width, amplitude_shape[3])

    def get_config(self):
        config = super().get_config()
        config.update({"epsilon": self.epsilon})
        return config
