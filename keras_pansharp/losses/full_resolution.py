"""No-reference full-resolution loss (Z-PNN / lambda-PNN), `keras.ops` only.

Trains or fine-tunes a pan-sharpening model on full-resolution data, where no
ground truth exists, from two consistency requirements (REFERENCE section 9):

- **spectral**: the fused image, low-pass filtered with the sensor's MTF
  kernels and decimated by 4 (pixels `[2::4, 2::4]`), must equal the MS.
  Measured with ERGAS and Khan's `D_lambda = 1 - Q2n` (differentiable,
  `keras_pansharp.utils.q2n.q2n_blocks`) at MS scale;
- **structural**: each fused band must correlate locally with the PAN, but
  not more than the scene allows: with `rho_b` the local correlation
  coefficient of fused band `b` and the PAN over `(2 * corr_half_width + 1)^2`
  windows and `x_b = 1 - max(rho_b, -1)`, the term is `mean(x_b * [x_b > t_b])`
  where the per-pixel threshold `t_b = 1 - rho(MTF-filtered PAN, LMS_b)`
  (half-width 8) is computed once from the inputs (`no_reference_target`).

`loss = alpha * ERGAS + beta * D_lambda^K + gamma * L_S`, one value per
sample. Mixed training adds the paper's supervised loss on the samples that
have a reference (`supervised_weight`; reduced-resolution crops from
`FullResolutionDataset(reduced_resolution=True)`).

Followed: matciotola/Lambda-PNN, files `train.py` (the weighted sum and the
from-scratch weights alpha 0.05, beta 1.25, gamma 3.75), `loss.py`
(`StructuralLoss`), `metrics.py` (`DowngradeProtocol`, `ReproDLambdaKhan`,
`ERGAS`), `tools/utils.py` (`local_corr_mask`) and
`tools/cross_correlation.py` (`xcorr_torch`). Choices where we differ, each
documented here:

- local correlation uses centred, odd `(2w + 1)^2` windows over the valid
  region (their cumulative-sum code uses even `2w x 2w` windows with zero
  padding);
- the threshold low-passes the PAN with the MTF kernel of each band `b`
  (their code uses the first band's kernel for every band);
- no misregistration shift is estimated (their pre-training does not use it
  either);
- one loss serves several sensors in one batch: the target carries a sensor
  index that selects the sensor's MTF kernels.

Optionally (`delta > 0`) a fourth term is QNR's own spatial distortion
`D_s = mean_b |Q(F_b, PAN) - Q(LMS_b, PAN_LP)|` (block UIQI on `ds_block`
blocks at PAN scale, `PAN_LP = interp23tap(imresize(PAN, 1/4))`), the
no-reference criterion of unsupervised QNR-loss pan-sharpening; it is not
part of lambda-PNN. Likewise (`epsilon > 0`) HQNR's own spectral index,
Khan's `D_lambda^K = 1 - Q2n(LMS, MTF(F))` at PAN scale on `ds_block` blocks
without decimation (the toolbox's definition; REFERENCE section 6), can be
added: with `delta` the loss then holds both factors of
`HQNR = (1 - D_lambda^K)(1 - D_s)` on each crop.

The target (`y_true`) is packed channels-last as
`[lms (C) | pan (1) | pan_lp (1) | threshold (C) | sensor index (1)]`,
`(B, H, W, 2C + 3)`;
`no_reference_target` builds it for a whole scene in NumPy and
`keras_pansharp.data.FullResolutionDataset` yields crops of it.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import ops

from keras_pansharp.layers.replicate_padding import replicate_pad
from keras_pansharp.utils.q2n import image_blocks, q2n_blocks

__all__ = [
    "NoReferenceLoss",
    "no_reference_target",
    "local_correlation",
    "unpack_target",
    "block_uiqi",
]

RATIO = 4
MTF_SIZE = 41
THRESHOLD_HALF_WIDTH = 8
_VAR_FLOOR = 1e-12


def _gain_sets(sensors) -> list[list[float]]:
    """Normalise `sensors` to a list of per-band MTF gain lists."""
    from keras_pansharp.sensors import Sensor
    from keras_pansharp.signal.kernels import resolve_gains

    if isinstance(sensors, (str, Sensor)):
        sensors = [sensors]
    elif (
        isinstance(sensors, Sequence)
        and sensors
        and isinstance(sensors[0], (int, float, np.number))
    ):
        sensors = [sensors]
    if not isinstance(sensors, Sequence) or not sensors:
        raise ValueError(
            "sensors must be a sensor name, a Sensor, a list of MTF gains, or a "
            f"non-empty list of those; got {sensors!r}."
        )
    out = []
    for s in sensors:
        gains = [float(g) for g in resolve_gains(s)]
        if not gains or not all(0.0 < g < 1.0 for g in gains):
            raise ValueError(f"MTF gains must be in (0, 1), got {gains} for {s!r}.")
        out.append(gains)
    bands = {len(g) for g in out}
    if len(bands) > 1:
        raise ValueError(
            f"All sensors of one NoReferenceLoss must have the same band count; got "
            f"{sorted(bands)} (use the 4-band view, e.g. 'WV3_RGBN', to mix)."
        )
    return out


def local_correlation(x, y, half_width: int):
    """Local correlation coefficient of two `(B, H, W, C)` tensors.

    Pearson correlation over every `(2w + 1) x (2w + 1)` window inside the
    image (valid region), per band; `y` may have one band (broadcast).
    Variances are floored at 1e-12 so flat windows give 0, not NaN.

    Args:
        x: `(B, H, W, C)` tensor.
        y: `(B, H, W, C)` or `(B, H, W, 1)` tensor.
        half_width: `w`, window half-width in pixels.

    Returns:
        `(B, H - 2w, W - 2w, C)` tensor in [-1, 1].
    """
    k = 2 * int(half_width) + 1
    # Centre each image first: float32 moments then cancel less.
    x = x - ops.mean(x, axis=(1, 2), keepdims=True)
    y = y - ops.mean(y, axis=(1, 2), keepdims=True)
    c = x.shape[-1]
    if y.shape[-1] != c:
        y = ops.repeat(y, c, axis=-1)

    def box(t):
        return ops.average_pool(t, pool_size=k, strides=1, padding="valid")

    mx, my = box(x), box(y)
    vx = ops.maximum(box(x * x) - mx * mx, _VAR_FLOOR)
    vy = ops.maximum(box(y * y) - my * my, _VAR_FLOOR)
    cxy = box(x * y) - mx * my
    return ops.clip(cxy / ops.sqrt(vx * vy), -1.0, 1.0)


def _local_correlation_np(x: np.ndarray, y: np.ndarray, half_width: int):
    """`(H, W, C)` local correlation, same size (symmetric border), float64."""
    from scipy.ndimage import uniform_filter

    k = 2 * int(half_width) + 1
    x = x - x.mean(axis=(0, 1))
    y = y - y.mean(axis=(0, 1))

    def box(t):
        return uniform_filter(t, size=(k, k, 1), mode="reflect")

    mx, my = box(x), box(y)
    vx = np.maximum(box(x * x) - mx * mx, _VAR_FLOOR)
    vy = np.maximum(box(y * y) - my * my, _VAR_FLOOR)
    return np.clip((box(x * y) - mx * my) / np.sqrt(vx * vy), -1.0, 1.0)


def no_reference_target(
    ms,
    pan,
    sensor,
    *,
    max_value: float | None = None,
    lms=None,
    sensor_index: int = 0,
    threshold_half_width: int = THRESHOLD_HALF_WIDTH,
) -> np.ndarray:
    """The `y_true` of `NoReferenceLoss` for one full-resolution scene.

    Args:
        ms: `(h, w, C)` MS in DN (or already normalised, with `max_value=1`).
        pan: `(4h, 4w)` or `(4h, 4w, 1)` PAN, same scale as `ms`.
        sensor: name or `Sensor` with C bands (its MTF gains low-pass the PAN
            for the threshold; its max DN normalises unless `max_value`).
        max_value: divide `ms`, `pan` (and `lms`) by this; default the
            sensor's max DN.
        lms: optional `(4h, 4w, C)` upsampled MS (default `interp23tap(ms)`).
        sensor_index: position of this scene's sensor in the loss's
            `sensors` list.
        threshold_half_width: half-width of the threshold's correlation
            windows (8, as lambda-PNN).

    Returns:
        float32 `(4h, 4w, 2C + 3)`: `[lms | pan | pan_lp | threshold | sensor
        index]`, with `lms`, `pan` and `pan_lp` divided by `max_value`.

    Example:
    >>> t = no_reference_target(ms, pan, "qb")  # doctest: +SKIP
    >>> t.shape                                 # doctest: +SKIP
    (1024, 1024, 11)
    """
    from keras_pansharp.sensors import get_sensor
    from keras_pansharp.signal import imresize_bicubic, interp23tap, mtf_filter
    from keras_pansharp.signal.checks import as_float_image, as_pan, check_pair

    sensor = get_sensor(sensor)
    ms = as_float_image(ms, "ms", allow_2d=False)
    pan = as_pan(pan)
    check_pair(ms, pan, RATIO)
    c = ms.shape[2]
    if c != sensor.num_bands:
        raise ValueError(
            f"ms has {c} bands but sensor {sensor.name} has {sensor.num_bands}."
        )
    scale = float(sensor.max_value if max_value is None else max_value)
    if not scale > 0:
        raise ValueError(f"max_value must be > 0, got {max_value}.")
    lms = interp23tap(ms) if lms is None else as_float_image(lms, "lms")
    if lms.shape != (*pan.shape, c):
        raise ValueError(f"lms must have shape {(*pan.shape, c)}, got {lms.shape}.")
    pan_lp = mtf_filter(np.repeat(pan[:, :, None], c, axis=2), sensor)
    threshold = 1.0 - _local_correlation_np(pan_lp, lms, threshold_half_width)
    pan_lr = interp23tap(imresize_bicubic(pan, 1.0 / RATIO)[:, :, None])
    sid = np.full((*pan.shape, 1), float(sensor_index))
    out = np.concatenate(
        [lms / scale, pan[:, :, None] / scale, pan_lr / scale, threshold, sid], -1
    )
    return out.astype("float32")


def unpack_target(y_true, bands: int):
    """Split a packed target into its parts.

    Returns:
        `(lms, pan, pan_lp, threshold, sensor_index, gt, has_gt)`; `gt` and
        `has_gt` are None for the plain `2C + 3`-channel target, and the
        reference `(B, H, W, C)` and its `(B, H, W)` flag for the
        `3C + 4`-channel one (`FullResolutionDataset(reduced_resolution=True)`).
    """
    c = int(bands)
    n = y_true.shape[-1]
    if n not in (2 * c + 3, 3 * c + 4):
        raise ValueError(
            f"NoReferenceLoss expects y_true with 2C + 3 = {2 * c + 3} channels "
            f"([lms | pan | pan_lp | threshold | sensor index], see "
            f"no_reference_target), or 3C + 4 = {3 * c + 4} with a reference "
            f"[... | gt | has_gt], for a {c}-band prediction; got {n}."
        )
    gt = has_gt = None
    if n == 3 * c + 4:
        gt, has_gt = y_true[..., 2 * c + 3 : 3 * c + 3], y_true[..., 3 * c + 3]
    return (
        y_true[..., :c],
        y_true[..., c : c + 1],
        y_true[..., c + 1 : c + 2],
        y_true[..., c + 2 : 2 * c + 2],
        y_true[..., 2 * c + 2],
        gt,
        has_gt,
    )


def block_uiqi(x, y, block_size: int):
    """Per-band UIQI on non-overlapping blocks, mean over blocks.

    Args:
        x: `(B, H, W, C)`; H and W static multiples of `block_size`.
        y: `(B, H, W, C)` or `(B, H, W, 1)` (broadcast over bands).
        block_size: block side in pixels.

    Returns:
        `(B, C)` mean block Q (Wang-Bovik; a flat block pair gives 1 when
        the means agree, like the toolbox).
    """
    h, w = x.shape[1], x.shape[2]
    s = int(block_size)
    if h is None or w is None or h % s or w % s:
        raise ValueError(f"block_uiqi: {h}x{w} is not a multiple of {s}.")
    bx, by = image_blocks(x, s), image_blocks(y, s)
    mx = ops.mean(bx, axis=2)
    my = ops.mean(by, axis=2)
    dx, dy = bx - mx[:, :, None], by - my[:, :, None]
    vx = ops.mean(dx * dx, axis=2)
    vy = ops.mean(dy * dy, axis=2)
    cxy = ops.mean(dx * dy, axis=2)
    num = 4.0 * cxy * mx * my
    den = (vx + vy) * (mx * mx + my * my)
    flat = 2.0 * mx * my / ops.maximum(mx * mx + my * my, 1e-12)
    q = ops.where(vx + vy > 1e-12, num / ops.maximum(den, 1e-20), flat)
    return ops.mean(q, axis=1)


@keras.saving.register_keras_serializable(package="keras_pansharp")
class NoReferenceLoss(keras.losses.Loss):
    """lambda-PNN's no-reference loss for full-resolution training.

    `alpha * ERGAS(reprojected, MS) + beta * (1 - Q2n(reprojected, MS)) +
    gamma * L_S` per sample (see the module docstring), on data normalised
    to [0, 1]; every term is invariant to a common gain of the inputs.

    Args:
        sensors: the sensor of the data (name, `Sensor` or list of MTF
            gains), or a list of them for multi-sensor batches (the target's
            sensor index picks one). All must have the prediction's band
            count (use e.g. `"WV3_RGBN"` for 4-band views). Stored in the
            config as lists of MTF gains.
        alpha: weight of the re-projected ERGAS.
        beta: weight of Khan's D_lambda (1 - Q2n) at MS scale.
        gamma: weight of the thresholded structural term.
        delta: weight of QNR's D_s term (0: lambda-PNN's loss).
        epsilon: weight of HQNR's D_lambda^K at PAN scale (`1 - Q2n(LMS,
            MTF(F))` on `ds_block` blocks, no decimation; 0: not computed).
        block_size: Q2n block side at MS scale (32); smaller crops use their
            whole MS size as one block.
        corr_half_width: half-width of the structural term's windows
            (`ceil(ratio / 2)` = 2).
        ds_block: block side of the D_s term at PAN scale (32, as QNR);
            smaller crops use their whole size.
        supervised_weight: weight of the paper's supervised loss
            (`PanSharpLoss`, 1.5 L1 + 4 (1 - SSIM)) on the samples that have a
            reference (reduced-resolution crops); needs the `3C + 4`-channel
            target. 0 (default): no-reference only.

    Call arguments:
        y_true: `(B, H, W, 2C + 3)` packed target (`no_reference_target`).
        y_pred: `(B, H, W, C)` fused image; H, W multiples of 4.

    Example:
    >>> loss = NoReferenceLoss(["qb", "wv3_rgbn"])
    >>> model.compile(optimizer="adam", loss=loss)  # doctest: +SKIP
    >>> model.fit(keras_pansharp.data.FullResolutionDataset(...))  # doctest: +SKIP
    """

    def __init__(
        self,
        sensors,
        alpha: float = 0.05,
        beta: float = 1.25,
        gamma: float = 3.75,
        delta: float = 0.0,
        epsilon: float = 0.0,
        block_size: int = 32,
        corr_half_width: int = 2,
        ds_block: int = 32,
        supervised_weight: float = 0.0,
        name: str = "no_reference_loss",
        reduction="sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.sensors = _gain_sets(sensors)
        for w, n in (
            (alpha, "alpha"),
            (beta, "beta"),
            (gamma, "gamma"),
            (delta, "delta"),
            (epsilon, "epsilon"),
            (supervised_weight, "supervised_weight"),
        ):
            if not (np.isfinite(w) and w >= 0):
                raise ValueError(f"{n} must be a finite weight >= 0, got {w}.")
        if int(block_size) < 2 or int(corr_half_width) < 1:
            raise ValueError(
                f"block_size must be >= 2 and corr_half_width >= 1, got "
                f"{block_size} and {corr_half_width}."
            )
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.gamma = float(gamma)
        self.delta = float(delta)
        self.epsilon = float(epsilon)
        self.supervised_weight = float(supervised_weight)
        from keras_pansharp.losses.supervised import PanSharpLoss

        self._supervised = PanSharpLoss()
        self.ds_block = int(ds_block)
        self.block_size = int(block_size)
        self.corr_half_width = int(corr_half_width)
        self.bands = len(self.sensors[0])
        from keras_pansharp.signal.kernels import mtf_kernels

        # (41, 41, C, S): each sensor's kernels as the depthwise multiplier.
        self._kernels = np.stack(
            [mtf_kernels(g, RATIO, MTF_SIZE) for g in self.sensors], axis=-1
        ).astype("float32")

    # ----------------------------------------------------------------- terms
    def reproject(self, y_pred, sensor_index=None):
        """MTF-filter (replicate borders) and decimate `[2::4, 2::4]`.

        Args:
            y_pred: `(B, H, W, C)`, H and W multiples of 4.
            sensor_index: `(B,)` index into `sensors` (default all 0).

        Returns:
            `(B, H / 4, W / 4, C)`.
        """
        return self._mtf(y_pred, sensor_index, RATIO)

    def lowpass(self, y_pred, sensor_index=None):
        """MTF-filter at PAN scale (replicate borders), no decimation.

        Args:
            y_pred: `(B, H, W, C)`.
            sensor_index: `(B,)` index into `sensors` (default all 0).

        Returns:
            `(B, H, W, C)`.
        """
        return self._mtf(y_pred, sensor_index, 1)

    def _mtf(self, y_pred, sensor_index, stride: int):
        c = self.bands
        if y_pred.shape[-1] != c:
            raise ValueError(
                f"NoReferenceLoss was built for {c} bands, the prediction has "
                f"{y_pred.shape[-1]}."
            )
        half = MTF_SIZE // 2
        x = replicate_pad(y_pred, half)
        if stride > 1:  # the decimation keeps pixels [2::4, 2::4]
            x = x[:, 2:, 2:, :]
        k = ops.cast(self._kernels, y_pred.dtype)
        out = ops.depthwise_conv(x, k, strides=stride, padding="valid")
        s = len(self.sensors)
        if s == 1:
            return out
        h, w = ops.shape(out)[1], ops.shape(out)[2]
        out = ops.reshape(out, (-1, h, w, c, s))
        onehot = ops.one_hot(ops.cast(sensor_index, "int32"), s, dtype=out.dtype)
        return ops.sum(out * onehot[:, None, None, None, :], axis=-1)

    def terms(self, y_true, y_pred) -> dict:
        """Per-sample terms: `ergas`, `d_lambda_k`, `structural`, `d_s` and
        `d_lambda_k_pan` (the last two when their weights are > 0).

        Returns:
            Dict of `(B,)` tensors (unweighted).
        """
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.cast(y_true, y_pred.dtype)
        if len(y_pred.shape) != 4 or len(y_true.shape) != 4:
            raise ValueError(
                "NoReferenceLoss expects (B, H, W, C) tensors; got y_true "
                f"{tuple(y_true.shape)} and y_pred {tuple(y_pred.shape)}."
            )
        lms, pan, pan_lp, thr, sid, gt, has_gt = unpack_target(y_true, self.bands)
        ms = lms[:, 2::RATIO, 2::RATIO, :]
        repro = self.reproject(y_pred, sid[:, 0, 0])
        # ERGAS (ratio 4) of the re-projection against the MS.
        mse = ops.mean(ops.square(repro - ms), axis=(1, 2))
        mu2 = ops.square(ops.mean(ms, axis=(1, 2)))
        ergas = (100.0 / RATIO) * ops.sqrt(
            ops.mean(mse / ops.maximum(mu2, 1e-12), axis=-1) + 1e-12
        )
        # Khan's D_lambda at MS scale.
        h, w = ms.shape[1], ms.shape[2]
        if h is None or w is None:
            raise ValueError("NoReferenceLoss needs static crop sizes.")
        block = min(self.block_size, h, w)
        d_lambda_k = 1.0 - q2n_blocks(ms, repro, block)
        # Thresholded structural term.
        hw = self.corr_half_width
        rho = local_correlation(y_pred, pan, hw)
        x = 1.0 - ops.maximum(rho, -1.0)
        t = thr[:, hw:-hw, hw:-hw, :]
        worst = ops.cast(x > t, x.dtype)
        structural = ops.mean(x * worst, axis=(1, 2, 3))
        out = {"ergas": ergas, "d_lambda_k": d_lambda_k, "structural": structural}
        # D_s and HQNR's D_lambda^K use the same PAN-scale blocks.
        big = min(self.ds_block, y_pred.shape[1], y_pred.shape[2])
        if self.delta:
            q_hr = block_uiqi(y_pred, pan, big)
            q_lr = block_uiqi(lms, pan_lp, big)
            out["d_s"] = ops.mean(ops.abs(q_hr - q_lr), axis=-1)
        if self.epsilon:
            low = self.lowpass(y_pred, sid[:, 0, 0])
            out["d_lambda_k_pan"] = 1.0 - q2n_blocks(lms, low, big)
        if self.supervised_weight:
            if gt is None:
                raise ValueError(
                    "NoReferenceLoss(supervised_weight > 0) needs targets with a "
                    "reference (FullResolutionDataset(reduced_resolution=True))."
                )
            flag = has_gt[:, 0, 0]
            sup = self._supervised.call(gt, y_pred)
            out["supervised"] = ops.where(flag > 0.5, sup, ops.zeros_like(sup))
        return out

    def call(self, y_true, y_pred):
        t = self.terms(y_true, y_pred)
        return (
            self.alpha * t["ergas"]
            + self.beta * t["d_lambda_k"]
            + self.gamma * t["structural"]
            + (self.delta * t["d_s"] if self.delta else 0.0)
            + (self.epsilon * t["d_lambda_k_pan"] if self.epsilon else 0.0)
            + (
                self.supervised_weight * t["supervised"]
                if self.supervised_weight
                else 0.0
            )
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            sensors=[list(g) for g in self.sensors],
            alpha=self.alpha,
            beta=self.beta,
            gamma=self.gamma,
            delta=self.delta,
            epsilon=self.epsilon,
            block_size=self.block_size,
            corr_half_width=self.corr_half_width,
            ds_block=self.ds_block,
            supervised_weight=self.supervised_weight,
        )
        return config
