"""Classical pan-sharpening methods of the reference toolbox (NumPy float64).

Reference baselines for RR/FR tables (REFERENCE §8), reproducing the toolbox
(Vivone et al., "A New Benchmark Based on Recent Advances in Multispectral
Pansharpening", 2020) to floating-point precision:

- `exp_method`: EXP, the MS upsampled with `interp23tap` (no PAN detail).
- `bt_h`: BT-H, Brovey transform with haze correction (`BroveyRegHazeMin`).
- `mtf_glp_hpm_r`: MTF-GLP-HPM-R, MTF-matched generalised Laplacian pyramid
  with high-pass modulation and regression-based injection (`MTF_GLP_HPM_R`).

All take the low-resolution MS `(h, w, C)` and the PAN `(r*h, r*w)` in the
same units (usually DN) and return the fused `(r*h, r*w, C)` image.
"""

from __future__ import annotations

import numpy as np

from keras_pansharp.signal.checks import (
    as_float_image,
    as_pan,
    check_pair,
    check_ratio,
)
from keras_pansharp.signal.filters import correlate_nearest, interp23tap
from keras_pansharp.signal.kernels import mtf_kernel, mtf_kernels
from keras_pansharp.signal.resize import imresize_nearest

__all__ = ["exp_method", "bt_h", "mtf_glp_hpm_r", "CLASSICAL_METHODS"]

_EPS = np.finfo(np.float64).eps


def _inputs(ms, pan, ratio, lms):
    ratio = check_ratio(ratio)
    ms = as_float_image(ms, "ms", allow_2d=False)
    pan = as_pan(pan, "pan")
    check_pair(ms, pan, ratio)
    if lms is None:
        lms = interp23tap(ms, ratio)
    else:
        lms = as_float_image(lms, "lms", allow_2d=False)
        if lms.shape != pan.shape + (ms.shape[2],):
            raise ValueError(
                f"lms has shape {lms.shape}; expected {pan.shape + (ms.shape[2],)} "
                "(PAN size, MS bands)."
            )
    return ms, pan, ratio, lms


def exp_method(ms, pan=None, ratio: int = 4) -> np.ndarray:
    """EXP: the MS upsampled to PAN size with `interp23tap`.

    Args:
        ms: low-resolution MS, (h, w, C).
        pan: optional PAN (ratio*h, ratio*w); only checked for size.
        ratio: resolution ratio (4).

    Returns:
        float64 (ratio*h, ratio*w, C).
    """
    ratio = check_ratio(ratio)
    ms = as_float_image(ms, "ms", allow_2d=False)
    if pan is not None:
        check_pair(ms, as_pan(pan, "pan"), ratio)
    return interp23tap(ms, ratio)


def _matlab_prctile(x: np.ndarray, p: float) -> float:
    """MATLAB `prctile` (midpoint rule, i.e. Hazen plotting positions)."""
    return float(np.percentile(x, p, method="hazen"))


def bt_h(ms, pan, ratio: int = 4, *, lms=None) -> np.ndarray:
    """BT-H: Brovey transform with haze correction (toolbox `BroveyRegHazeMin`).

    Haze per band: for 4-band data (blue, green, red, NIR order) the 1st
    percentile of the upsampled band times 0.95 / 0.45 / 0.40 / 0.05;
    otherwise the band minimum. The intensity is a least-squares combination
    (no intercept) of the haze-corrected bands fitted to the PAN low-passed by
    a 0.3-gain Gaussian (toolbox `LPfilterGauss`); the PAN is matched to the
    intensity's mean and std, then `fused = max(lms - haze, 0) * pan / (I + eps)
    + haze`.

    Args:
        ms: low-resolution MS, (h, w, C).
        pan: PAN, (ratio*h, ratio*w) or (ratio*h, ratio*w, 1).
        ratio: resolution ratio (4).
        lms: optional precomputed `interp23tap(ms, ratio)`.

    Returns:
        float64 (ratio*h, ratio*w, C).
    """
    ms, pan, ratio, lms = _inputs(ms, pan, ratio, lms)
    c = lms.shape[2]
    if c == 4:
        factors = (0.95, 0.45, 0.40, 0.05)
        haze = np.array(
            [factors[b] * _matlab_prctile(lms[:, :, b], 1.0) for b in range(4)]
        )
    else:
        haze = lms.reshape(-1, c).min(axis=0)
    # LPfilterGauss: GNyq 0.3, N = 41 in the sigma formula (not N - 1).
    pan_lp = correlate_nearest(pan, mtf_kernel(0.3, ratio, 41, sigma_n=41))
    # estimation_alpha(imageLR, imageHR_LR, 'global'): MATLAB backslash.
    alpha, *_ = np.linalg.lstsq(lms.reshape(-1, c), pan_lp.ravel(), rcond=None)
    ms_l = lms - haze
    intensity = (ms_l.reshape(-1, c) @ alpha).reshape(pan.shape)
    pan_m = (pan - pan_lp.mean()) * (
        intensity.std(ddof=1) / pan_lp.std(ddof=1)
    ) + intensity.mean()
    # fused = max(lms - haze, 0) * pan_m / (I + eps) + haze, in place.
    np.maximum(ms_l, 0.0, out=ms_l)
    ms_l *= (pan_m / (intensity + _EPS))[:, :, None]
    ms_l += haze
    return ms_l


def mtf_glp_hpm_r(ms, pan, sensor, ratio: int = 4, *, lms=None) -> np.ndarray:
    """MTF-GLP-HPM-R: regression-based high-pass modulation (toolbox
    `MTF_GLP_HPM_R`).

    Per band b: `PAN_LP = interp23tap(decimate(MTF_b(PAN)))` (decimation by
    MATLAB `imresize(..., 'nearest')`), `g = cov(lms_b, PAN_LP) / var(PAN_LP)`,
    `cb = mean(lms_b) / g - mean(PAN)`, and
    `fused_b = lms_b * (PAN + cb) / (PAN_LP + cb + eps)`.

    Args:
        ms: low-resolution MS, (h, w, C).
        pan: PAN, (ratio*h, ratio*w) or (ratio*h, ratio*w, 1).
        sensor: sensor name / `Sensor` / `"none"` / per-band MTF gains.
        ratio: resolution ratio (4).
        lms: optional precomputed `interp23tap(ms, ratio)`.

    Returns:
        float64 (ratio*h, ratio*w, C).
    """
    ms, pan, ratio, lms = _inputs(ms, pan, ratio, lms)
    c = lms.shape[2]
    kernels = mtf_kernels(sensor, ratio, num_bands=c)
    # PAN low-passed with each band's MTF, decimated (MATLAB 'nearest'),
    # re-interpolated: all bands at once (one PAN FFT).
    pan_lps = interp23tap(
        imresize_nearest(correlate_nearest(pan, kernels), 1.0 / ratio), ratio
    )
    out = np.empty_like(lms)
    pan_mean = pan.mean()
    for b in range(c):
        pan_lp = pan_lps[:, :, b]
        msb = lms[:, :, b]
        cov = np.cov(msb.ravel(), pan_lp.ravel(), ddof=1)
        g = cov[0, 1] / cov[1, 1]
        cb = msb.mean() / g - pan_mean
        out[:, :, b] = msb * (pan + cb) / (pan_lp + cb + _EPS)
    return out


CLASSICAL_METHODS = {
    "EXP": lambda ms, pan, sensor, ratio=4: exp_method(ms, pan, ratio),
    "BT_H": lambda ms, pan, sensor, ratio=4: bt_h(ms, pan, ratio),
    "MTF_GLP_HPM_R": lambda ms, pan, sensor, ratio=4: mtf_glp_hpm_r(
        ms, pan, sensor, ratio
    ),
}
