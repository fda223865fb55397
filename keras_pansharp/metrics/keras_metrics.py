"""Pan-sharpening quality metrics as `keras.metrics.Metric` (pure `keras.ops`).

They run inside compiled `fit()` / `evaluate()` on every backend. Each takes
`(y_true=gt, y_pred=fused)` batches of normalised images `(B, H, W, C)` in
[0, 1] (the shared convention: DN / sensor max DN) and follows the NumPy
reference functions of `keras_pansharp.metrics` (float32 results agree with
them to about 1e-4 on the toolbox's golden RR cases).

Batch-aggregation rule (all metrics): the metric value of each image is
computed on its own, and `result()` is the (sample-weighted) mean of the
per-image values over all images seen since the last `reset_state()`. This
equals the NumPy function for a batch of one image, and the usual
"mean over the test images" of published tables otherwise.

Example:

>>> import keras
>>> import keras_pansharp as kp
>>> model.compile(  # doctest: +SKIP
...     optimizer="adam",
...     loss="mae",
...     metrics=[kp.metrics.SAM(), kp.metrics.ERGAS(), kp.metrics.Q2n(sensor="wv3")],
... )
"""

from __future__ import annotations

import math

import keras
from keras import ops

from keras_pansharp.losses.supervised import ssim
from keras_pansharp.sensors import Sensor, get_sensor
from keras_pansharp.utils.q2n import q2n_blocks

__all__ = ["SAM", "ERGAS", "Q2n", "SCC", "PSNR", "SSIM"]


def _check_images(y_true, y_pred, name):
    if len(y_true.shape) != 4 or len(y_pred.shape) != 4:
        raise ValueError(
            f"{name}: expected (B, H, W, C) batches, got y_true {tuple(y_true.shape)} "
            f"and y_pred {tuple(y_pred.shape)}."
        )
    for a, b in zip(y_true.shape[1:], y_pred.shape[1:]):
        if a is not None and b is not None and a != b:
            raise ValueError(
                f"{name}: y_true {tuple(y_true.shape)} and y_pred "
                f"{tuple(y_pred.shape)} must have the same (H, W, C)."
            )


def _mean_hw(x):
    """Mean over axes 1 and 2 in two stages (accurate float32 sums on TF)."""
    return ops.mean(ops.mean(x, axis=2), axis=1)


def _sum_hw(x):
    """Sum over axes 1 and 2 in two stages."""
    return ops.sum(ops.sum(x, axis=2), axis=1)


class _PerImageMetric(keras.metrics.Metric):
    """Mean of a per-image value over all images seen (sample-weighted)."""

    def __init__(self, name, dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype or "float32", **kwargs)
        self.total = self.add_variable(
            shape=(), initializer="zeros", dtype=self.dtype, name="total"
        )
        self.count = self.add_variable(
            shape=(), initializer="zeros", dtype=self.dtype, name="count"
        )

    def per_image(self, y_true, y_pred):  # pragma: no cover - abstract
        raise NotImplementedError

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.convert_to_tensor(y_true, dtype=self.dtype)
        y_pred = ops.convert_to_tensor(y_pred, dtype=self.dtype)
        _check_images(y_true, y_pred, self.name)
        values = ops.cast(self.per_image(y_true, y_pred), self.dtype)
        if sample_weight is None:
            weights = ops.ones_like(values)
        else:
            weights = ops.cast(sample_weight, self.dtype)
            weights = ops.reshape(weights, (ops.shape(weights)[0], -1))
            weights = ops.mean(weights, axis=-1)
            weights = ops.broadcast_to(weights, ops.shape(values))
        self.total.assign_add(ops.sum(values * weights))
        self.count.assign_add(ops.sum(weights))

    def result(self):
        return ops.divide_no_nan(self.total, self.count)

    def reset_state(self):
        self.total.assign(ops.zeros((), dtype=self.dtype))
        self.count.assign(ops.zeros((), dtype=self.dtype))

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


@keras.saving.register_keras_serializable(package="keras_pansharp")
class SAM(_PerImageMetric):
    """Spectral Angle Mapper in degrees (mean over images).

    Per image: the mean spectral angle over pixels where both spectra are
    non-zero (as the toolbox), computed with the numerically stable
    `2·atan2(|u − v|, |u + v|)` of the unit spectra (float32-safe; equal to
    `acos(<x, y>/(|x||y|))`). Scale invariant.

    Batch aggregation: mean of per-image SAM over all images seen.

    Args:
        name: metric name.
        dtype: computation dtype (float32).
    """

    def __init__(self, name="sam", dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)

    def per_image(self, y_true, y_pred):
        nt = ops.sqrt(ops.sum(y_true * y_true, axis=-1, keepdims=True))
        npred = ops.sqrt(ops.sum(y_pred * y_pred, axis=-1, keepdims=True))
        valid = ops.cast((nt[..., 0] * npred[..., 0]) > 0, y_true.dtype)
        u = y_true / ops.where(nt > 0, nt, ops.ones_like(nt))
        v = y_pred / ops.where(npred > 0, npred, ops.ones_like(npred))
        diff = ops.sqrt(ops.sum(ops.square(u - v), axis=-1))
        summ = ops.sqrt(ops.sum(ops.square(u + v), axis=-1))
        angle = 2.0 * ops.arctan2(diff, summ) * valid
        total = _sum_hw(angle)
        n = _sum_hw(valid)
        return ops.divide_no_nan(total, n) * (180.0 / math.pi)


@keras.saving.register_keras_serializable(package="keras_pansharp")
class ERGAS(_PerImageMetric):
    """ERGAS (mean over images): `(100/r)·sqrt(mean_b(MSE_b / mean(GT_b)²))`.

    Scale invariant. A band whose ground-truth mean is 0 contributes 0 (the
    toolbox would divide by zero).

    Batch aggregation: mean of per-image ERGAS over all images seen.

    Args:
        ratio: resolution ratio (4).
        name: metric name.
        dtype: computation dtype.
    """

    def __init__(self, ratio=4, name="ergas", dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.ratio = int(ratio)

    def per_image(self, y_true, y_pred):
        mse = _mean_hw(ops.square(y_true - y_pred))
        mu2 = ops.square(_mean_hw(y_true))
        return (100.0 / self.ratio) * ops.sqrt(
            ops.mean(ops.divide_no_nan(mse, mu2), axis=-1)
        )

    def get_config(self):
        return {**super().get_config(), "ratio": self.ratio}


@keras.saving.register_keras_serializable(package="keras_pansharp")
class SCC(_PerImageMetric):
    """Spatial correlation coefficient (toolbox Sobel version), mean over images.

    Per image: drop a 1-pixel border, Sobel gradient magnitude per band (zero
    padding), `Σ M_F·M_GT / sqrt(Σ M_F² · Σ M_GT²)` over pixels and bands.

    Batch aggregation: mean of per-image SCC over all images seen.

    Args:
        name: metric name.
        dtype: computation dtype.
    """

    def __init__(self, name="scc", dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)

    @staticmethod
    def _magnitude(x):
        x = x[:, 1:-1, 1:-1, :]
        p = ops.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        top = p[:, :-2, :-2] + 2.0 * p[:, :-2, 1:-1] + p[:, :-2, 2:]
        bot = p[:, 2:, :-2] + 2.0 * p[:, 2:, 1:-1] + p[:, 2:, 2:]
        left = p[:, :-2, :-2] + 2.0 * p[:, 1:-1, :-2] + p[:, 2:, :-2]
        right = p[:, :-2, 2:] + 2.0 * p[:, 1:-1, 2:] + p[:, 2:, 2:]
        return ops.sqrt(ops.square(top - bot) + ops.square(left - right))

    def per_image(self, y_true, y_pred):
        mt = self._magnitude(y_true)
        mp = self._magnitude(y_pred)
        num = ops.sum(_sum_hw(mt * mp), axis=-1)
        den = ops.sqrt(ops.sum(_sum_hw(mt * mt), axis=-1)) * ops.sqrt(
            ops.sum(_sum_hw(mp * mp), axis=-1)
        )
        return ops.divide_no_nan(num, den)


@keras.saving.register_keras_serializable(package="keras_pansharp")
class PSNR(_PerImageMetric):
    """PSNR in dB on [0, 1] data: per band `10·log10(1/MSE_b)`, mean over bands.

    Batch aggregation: mean of per-image PSNR over all images seen (an
    image identical to its ground truth gives `inf`, as scikit-image).

    Args:
        name: metric name.
        dtype: computation dtype.
    """

    def __init__(self, name="psnr", dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)

    def per_image(self, y_true, y_pred):
        mse = _mean_hw(ops.square(y_true - y_pred))
        return ops.mean(-10.0 * ops.log10(mse), axis=-1)


@keras.saving.register_keras_serializable(package="keras_pansharp")
class SSIM(_PerImageMetric):
    """SSIM on [0, 1] data, per band then mean over bands (scikit-image).

    Gaussian 11 × 11 window (σ = 1.5), K1 = 0.01, K2 = 0.03, population
    statistics, mean over the map without its 5-pixel border — the same as
    `skimage.metrics.structural_similarity(..., gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, data_range=1)`.

    Batch aggregation: mean of per-image SSIM over all images seen.

    Args:
        name: metric name.
        dtype: computation dtype.
    """

    def __init__(self, name="ssim", dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)

    def per_image(self, y_true, y_pred):
        return ssim(y_true, y_pred, data_range=1.0)


@keras.saving.register_keras_serializable(package="keras_pansharp")
class Q2n(_PerImageMetric):
    """Q2n (Q4 / Q8) hypercomplex quality index, mean over images.

    Per image, as the toolbox's `q2n`: the normalised inputs are scaled to DN
    by `max_value` (from `sensor` unless given), cast to uint16 semantics
    (round half away from zero, clip to [0, 65535]), padded symmetrically to
    multiples of `block_size`, bands zero-padded to a power of two; the mean
    over non-overlapping blocks of the norm of the hypercomplex UIQI.

    Deviation (float32 safety): a flat ground-truth block band uses a
    standard-deviation floor of 1e-8 instead of the toolbox's 2.2e-16. Its
    normalised ground truth is exactly 1 either way, and the block score
    differs by < 1e-7.

    H and W must be static (known when the model is traced).

    Batch aggregation: mean of per-image Q2n over all images seen.

    Args:
        sensor: sensor name (gives the max DN), e.g. `"wv3"`.
        max_value: max DN, overriding the sensor's (e.g. 2047 for 11 bits).
        block_size: block side (32).
        name: metric name.
        dtype: computation dtype.
    """

    def __init__(
        self,
        sensor: str | None = None,
        max_value: float | None = None,
        block_size: int = 32,
        name="q2n",
        dtype=None,
        **kwargs,
    ):
        super().__init__(name=name, dtype=dtype, **kwargs)
        if isinstance(sensor, Sensor):
            if max_value is None:
                max_value = sensor.max_value
            sensor = sensor.name
        if max_value is None:
            if sensor is None:
                raise ValueError(
                    "Q2n quantises in DN: pass sensor= (e.g. 'wv3') or max_value=."
                )
            max_value = get_sensor(sensor).max_value
        max_value = float(max_value)
        if not max_value > 0:
            raise ValueError(f"max_value must be > 0, got {max_value}.")
        self.sensor = sensor
        self.max_value = max_value
        self.block_size = int(block_size)

    def per_image(self, y_true, y_pred):
        h, w, c = y_true.shape[1:]
        if h is None or w is None or c is None:
            raise ValueError(
                f"Q2n needs static H, W, C; got y_true of shape {tuple(y_true.shape)}."
            )
        s = self.block_size
        g = self._quantise(y_true * self.max_value)
        f = self._quantise(y_pred * self.max_value)
        eh, ew = (-h) % s, (-w) % s
        if eh or ew:
            if eh > h or ew > w:
                raise ValueError(f"image {h}x{w} is too small for {s}x{s} blocks.")
            pad = ((0, 0), (0, eh), (0, ew), (0, 0))
            g = ops.pad(g, pad, mode="symmetric")
            f = ops.pad(f, pad, mode="symmetric")
        return q2n_blocks(g, f, s)

    @staticmethod
    def _quantise(x):
        fl = ops.floor(x)
        r = fl + ops.cast(x - fl >= 0.5, x.dtype)
        return ops.clip(r, 0.0, 65535.0)

    def get_config(self):
        return {
            **super().get_config(),
            "sensor": self.sensor,
            "max_value": self.max_value,
            "block_size": self.block_size,
        }
