"""Training losses for pan-sharpening (backend-agnostic, `keras.ops` only).

- `L1Loss`: mean absolute error over all pixels and bands.
- `SSIMLoss`: `1 - SSIM` with the standard Gaussian window (11 x 11,
  sigma 1.5, K1 = 0.01, K2 = 0.03) on data in `[0, data_range]`.
- `PanSharpLoss`: the paper's weighted sum `1.5 * L1 + 4 * (1 - SSIM)`
  (REFERENCE section 7).

The supervised losses take `(y_true, y_pred)` batches `(B, H, W, C)` and return one value
per sample, so Keras' default `"sum_over_batch_size"` reduction gives the batch
mean (equal to PyTorch's `L1Loss()` mean over every element when all samples
have the same size).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

__all__ = [
    "L1Loss",
    "SSIMLoss",
    "PanSharpLoss",
    "ssim",
    "gaussian_window",
]


def _gaussian_taps(size: int, sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian taps (float64); validates the arguments."""
    if size % 2 != 1 or size < 1:
        raise ValueError(f"window size must be a positive odd integer, got {size}")
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    r = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-0.5 * (r / sigma) ** 2)
    return g / g.sum()


def gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """Normalised 2-D Gaussian window.

    Args:
        size: window side in pixels (odd).
        sigma: standard deviation in pixels.

    Returns:
        float32 array `(size, size)` summing to 1. For `size=11, sigma=1.5` it
        equals the window `scipy.ndimage.gaussian_filter(..., sigma=1.5,
        truncate=3.5)` uses, i.e. scikit-image's SSIM with
        `gaussian_weights=True`.
    """
    g = _gaussian_taps(size, sigma)
    return np.outer(g, g).astype("float32")


def _check_pair(y_true, y_pred):
    if len(y_pred.shape) != 4:
        raise ValueError(
            "pan-sharpening losses expect images of shape (batch, height, "
            f"width, bands); got y_pred with shape {tuple(y_pred.shape)}"
        )
    if len(y_true.shape) != 4:
        raise ValueError(
            "pan-sharpening losses expect images of shape (batch, height, "
            f"width, bands); got y_true with shape {tuple(y_true.shape)}"
        )


def ssim(
    y_true,
    y_pred,
    data_range: float = 1.0,
    window_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
):
    """Per-sample mean SSIM of two image batches (differentiable).

    Local statistics come from a depthwise "valid" convolution with a Gaussian
    window (no padding: only windows fully inside the image count), population
    (co)variances (`use_sample_covariance=False`), mean over the map and the
    bands. This equals `skimage.metrics.structural_similarity(...,
    gaussian_weights=True, sigma=sigma, use_sample_covariance=False,
    data_range=data_range, channel_axis=-1)` per image.

    Args:
        y_true: `(B, H, W, C)` reference, values in `[0, data_range]`.
        y_pred: `(B, H, W, C)` estimate, same shape.
        data_range: dynamic range of the data (1 for normalised images).
        window_size: Gaussian window side (odd); H and W must be at least this.
        sigma: Gaussian standard deviation in pixels.
        k1: SSIM stabiliser constant for the means.
        k2: SSIM stabiliser constant for the variances.

    Returns:
        Tensor `(B,)` of SSIM values (1 = identical).
    """
    y_true = ops.convert_to_tensor(y_true)
    y_pred = ops.convert_to_tensor(y_pred)
    _check_pair(y_true, y_pred)
    dtype = y_pred.dtype
    y_true = ops.cast(y_true, dtype)
    channels = y_pred.shape[-1]
    if channels is None:
        raise ValueError("the band axis (last) of y_pred must have a static size")
    # The Gaussian window is separable: filter columns, then rows.
    taps = _gaussian_taps(window_size, sigma)
    k_v = np.tile(taps.reshape(-1, 1, 1, 1), (1, 1, channels, 1))
    k_h = np.tile(taps.reshape(1, -1, 1, 1), (1, 1, channels, 1))
    k_v = ops.cast(ops.convert_to_tensor(k_v), dtype)
    k_h = ops.cast(ops.convert_to_tensor(k_h), dtype)

    def filt(x):
        x = ops.depthwise_conv(x, k_v, strides=1, padding="valid")
        return ops.depthwise_conv(x, k_h, strides=1, padding="valid")

    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    mu_x = filt(y_true)
    mu_y = filt(y_pred)
    sxx = filt(y_true * y_true) - mu_x * mu_x
    syy = filt(y_pred * y_pred) - mu_y * mu_y
    sxy = filt(y_true * y_pred) - mu_x * mu_y
    num = (2.0 * mu_x * mu_y + c1) * (2.0 * sxy + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (sxx + syy + c2)
    # Mean over the map in two stages (accurate float32 sums on TensorFlow),
    # then over the bands.
    return ops.mean(ops.mean(ops.mean(num / den, axis=2), axis=1), axis=-1)


def _l1(y_true, y_pred):
    """Per-sample mean absolute error of `(B, H, W, C)` batches."""
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.cast(y_true, y_pred.dtype)
    _check_pair(y_true, y_pred)
    return ops.mean(ops.abs(y_pred - y_true), axis=(1, 2, 3))


@keras.saving.register_keras_serializable(package="keras_pansharp")
class L1Loss(keras.losses.Loss):
    """Mean absolute error over pixels and bands, one value per sample.

    Example:
    >>> loss = L1Loss()
    >>> float(loss(np.zeros((1, 8, 8, 4)), np.ones((1, 8, 8, 4))))
    1.0
    """

    def __init__(
        self, name: str = "l1_loss", reduction="sum_over_batch_size", dtype=None
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        return _l1(y_true, y_pred)


@keras.saving.register_keras_serializable(package="keras_pansharp")
class SSIMLoss(keras.losses.Loss):
    """`1 - SSIM` (Gaussian 11 x 11, sigma 1.5), one value per sample.

    Args:
        data_range: dynamic range of the images (1 for data normalised by the
            sensor's max DN).
        window_size: Gaussian window side in pixels.
        sigma: Gaussian standard deviation in pixels.

    Example:
    >>> x = np.random.rand(2, 32, 32, 4).astype("float32")
    >>> float(SSIMLoss()(x, x))
    0.0
    """

    def __init__(
        self,
        data_range: float = 1.0,
        window_size: int = 11,
        sigma: float = 1.5,
        name: str = "ssim_loss",
        reduction="sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        _gaussian_taps(window_size, sigma)  # validates the arguments
        self.data_range = float(data_range)
        self.window_size = int(window_size)
        self.sigma = float(sigma)

    def call(self, y_true, y_pred):
        return 1.0 - ssim(
            y_true,
            y_pred,
            data_range=self.data_range,
            window_size=self.window_size,
            sigma=self.sigma,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            data_range=self.data_range,
            window_size=self.window_size,
            sigma=self.sigma,
        )
        return config


@keras.saving.register_keras_serializable(package="keras_pansharp")
class PanSharpLoss(SSIMLoss):
    """The PanTiny paper's loss: `l1_weight * L1 + ssim_weight * (1 - SSIM)`.

    With the defaults (1.5 and 4.0) this is the loss of the paper's training
    code. (Its code adds `1.5 *` a third term that falls back to L1 unless an
    optional dependency is present; like the paper's runs, we leave it out.)

    Args:
        l1_weight: weight of the mean absolute error.
        ssim_weight: weight of `1 - SSIM`.
        data_range: dynamic range of the images (1 for normalised data).
        window_size: SSIM Gaussian window side.
        sigma: SSIM Gaussian standard deviation.

    Example:
    >>> model.compile(optimizer="adam", loss=PanSharpLoss())
    """

    def __init__(
        self,
        l1_weight: float = 1.5,
        ssim_weight: float = 4.0,
        data_range: float = 1.0,
        window_size: int = 11,
        sigma: float = 1.5,
        name: str = "pansharp_loss",
        reduction="sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(
            data_range=data_range,
            window_size=window_size,
            sigma=sigma,
            name=name,
            reduction=reduction,
            dtype=dtype,
        )
        self.l1_weight = float(l1_weight)
        self.ssim_weight = float(ssim_weight)

    def call(self, y_true, y_pred):
        l1 = _l1(y_true, y_pred)
        return self.l1_weight * l1 + self.ssim_weight * super().call(y_true, y_pred)

    def get_config(self):
        config = super().get_config()
        config.update(l1_weight=self.l1_weight, ssim_weight=self.ssim_weight)
        return config
