"""Reduced-resolution (reference) metrics, toolbox-exact (NumPy float64).

SAM, ERGAS, SCC, PSNR and SSIM of a fused image against its ground truth, and
`evaluate_rr`, which adds Q_avg and Q2n (`keras_pansharp.metrics.q_index`).
They reproduce the MATLAB pan-sharpening toolbox behind the community's
published reduced-resolution tables (see `REFERENCE.md` §6). Input
conventions: see `keras_pansharp.metrics._inputs`; PSNR and SSIM work on
[0, 1] data and need the DN scale, the other metrics are scale invariant.

Deliberate deviations from the toolbox (it returns NaN or Inf in these cases):

- `sam`: when every pixel has a zero spectrum in one of the images, 0.0.
- `ergas`: a band whose ground-truth mean is 0 contributes 0 if the fused band
  is also all zero, `inf` otherwise.
- `psnr`: identical images give `inf` (as scikit-image).

Example:

>>> import numpy as np
>>> from keras_pansharp.metrics import evaluate_rr
>>> gt = np.random.default_rng(0).uniform(100, 1500, (64, 64, 4))
>>> fused = gt + np.random.default_rng(1).normal(0, 10, gt.shape)
>>> scores = evaluate_rr(fused, gt, sensor="qb")
>>> sorted(scores)
['ergas', 'psnr', 'q2n', 'q_avg', 'sam', 'scc', 'ssim']
"""

from __future__ import annotations

import numpy as np

from keras_pansharp.metrics._inputs import (
    Q_BLOCK,
    RATIO,
    _as_image,
    _check_bands,
    _check_scales,
    _resolve_scale,
    _same_shape,
    _scale_stats,
    _to_dn,
    _unit_scale,
    border_cut,
)
from keras_pansharp.metrics.q_index import _q2n_dn, q_avg
from keras_pansharp.sensors import Sensor

__all__ = ["sam", "ergas", "scc", "psnr", "ssim", "evaluate_rr"]


# ------------------------------------------------------------------------ SAM
def sam(fused, gt) -> float:
    """Spectral Angle Mapper in degrees (toolbox `SAM.m`).

    Args:
        fused: fused image `(H, W, C)`.
        gt: reference image `(H, W, C)`, same shape. DN or normalised (SAM is
            scale invariant).

    Returns:
        Mean spectral angle in degrees over the pixels where both spectra are
        non-zero (0.0 if there is none).
    """
    f = _as_image(fused, "fused")
    g = _as_image(gt, "gt")
    _same_shape(f, g, "fused", "gt")
    prod = np.einsum("hwc,hwc->hw", g, f)
    norm = np.sqrt(np.einsum("hwc,hwc->hw", g, g) * np.einsum("hwc,hwc->hw", f, f))
    valid = norm != 0
    if not np.any(valid):
        return 0.0
    ratio = np.clip(prod[valid] / norm[valid], -1.0, 1.0)  # toolbox: real(acos)
    return float(np.sum(np.arccos(ratio)) / ratio.size * 180.0 / np.pi)


# ---------------------------------------------------------------------- ERGAS
def ergas(fused, gt, ratio: int = RATIO) -> float:
    """ERGAS (toolbox `ERGAS.m`): `(100/r)·sqrt(mean_b(MSE_b / mean(GT_b)²))`.

    Args:
        fused: fused image `(H, W, C)`.
        gt: reference image `(H, W, C)` (DN or normalised; scale invariant).
        ratio: resolution ratio (4).

    Returns:
        ERGAS (lower is better, 0 for a perfect fusion).
    """
    f = _as_image(fused, "fused")
    g = _as_image(gt, "gt")
    _same_shape(f, g, "fused", "gt")
    mse = np.mean((g - f) ** 2, axis=(0, 1))
    mu2 = np.mean(g, axis=(0, 1)) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(mu2 == 0, np.where(mse == 0, 0.0, np.inf), mse / mu2)
    return float(100.0 / ratio * np.sqrt(np.mean(terms)))


# ------------------------------------------------------------------------ SCC
def _sobel_magnitude(x: np.ndarray) -> np.ndarray:
    """Toolbox SCC gradient magnitude on (H, W, C) (border already cut)."""
    p = np.pad(x, ((1, 1), (1, 1), (0, 0)))
    # Correlation with [[1,2,1],[0,0,0],[-1,-2,-1]] (gy) and its transpose.
    top = p[:-2, :-2] + 2.0 * p[:-2, 1:-1] + p[:-2, 2:]
    bot = p[2:, :-2] + 2.0 * p[2:, 1:-1] + p[2:, 2:]
    left = p[:-2, :-2] + 2.0 * p[1:-1, :-2] + p[2:, :-2]
    right = p[:-2, 2:] + 2.0 * p[1:-1, 2:] + p[2:, 2:]
    gy = top - bot
    gx = left - right
    return np.sqrt(gy * gy + gx * gx)


def scc(fused, gt) -> float:
    """Spatial correlation coefficient (toolbox `SCC.m`, Sobel version).

    Per band: drop a 1-pixel border, Sobel gradient magnitude (zero padding);
    SCC = Σ M_F·M_GT / sqrt(Σ M_F² · Σ M_GT²) over all pixels and bands.

    Args:
        fused: fused image `(H, W, C)`, H, W >= 3.
        gt: reference image `(H, W, C)`.

    Returns:
        SCC in [0, 1] (1 is perfect). Scale invariant.
    """
    f = _as_image(fused, "fused")
    g = _as_image(gt, "gt")
    _same_shape(f, g, "fused", "gt")
    if f.shape[0] < 3 or f.shape[1] < 3:
        raise ValueError(f"scc needs images of at least 3x3, got {f.shape[:2]}.")
    mf = _sobel_magnitude(f[1:-1, 1:-1])
    mg = _sobel_magnitude(g[1:-1, 1:-1])
    num = np.sum(mf * mg)
    den = np.sqrt(np.sum(mf * mf)) * np.sqrt(np.sum(mg * mg))
    if den == 0:
        # Both flat: identical structure (1); one flat: no correlation (0).
        return 1.0 if np.sum(mf * mf) == np.sum(mg * mg) else 0.0
    return float(num / den)


# --------------------------------------------------------------- PSNR / SSIM
def psnr(
    fused,
    gt,
    *,
    normalized: bool = False,
    max_value: float | None = None,
    sensor: str | Sensor | None = None,
) -> float:
    """PSNR in dB, per band on [0, 1] data, averaged over bands.

    `10·log10(1 / MSE_b)` with the data scaled to [0, 1] by the sensor's max DN
    (scikit-image `peak_signal_noise_ratio(..., data_range=1)` per band).

    Args:
        fused: fused image `(H, W, C)`.
        gt: reference image `(H, W, C)`.
        normalized: True when the inputs are already in [0, 1].
        max_value: maximum DN (for DN inputs).
        sensor: sensor name or `Sensor` (gives `max_value`).

    Returns:
        Mean PSNR over bands in dB (`inf` as soon as one band is identical to
        its reference, as scikit-image's per-band value is then `inf`).
    """
    f = _as_image(fused, "fused")
    g = _as_image(gt, "gt")
    _same_shape(f, g, "fused", "gt")
    f, g = _unit_scale(f, g, normalized, sensor, max_value, "psnr")
    mse = np.mean((g - f) ** 2, axis=(0, 1))
    with np.errstate(divide="ignore"):
        vals = 10.0 * np.log10(1.0 / mse)
    return float(np.mean(vals))


def ssim(
    fused,
    gt,
    *,
    normalized: bool = False,
    max_value: float | None = None,
    sensor: str | Sensor | None = None,
) -> float:
    """SSIM per band on [0, 1] data, averaged over bands (scikit-image).

    `skimage.metrics.structural_similarity` with Gaussian 11 × 11 weights
    (σ = 1.5), K1 = 0.01, K2 = 0.03, population covariance, `data_range=1`;
    the mean over the map excludes the 5-pixel border.

    Args:
        fused: fused image `(H, W, C)`, H, W >= 11.
        gt: reference image `(H, W, C)`.
        normalized: True when the inputs are already in [0, 1].
        max_value: maximum DN (for DN inputs).
        sensor: sensor name or `Sensor` (gives `max_value`).

    Returns:
        Mean SSIM over bands.
    """
    from skimage.metrics import structural_similarity

    f = _as_image(fused, "fused")
    g = _as_image(gt, "gt")
    _same_shape(f, g, "fused", "gt")
    if f.shape[0] < 11 or f.shape[1] < 11:
        raise ValueError(f"ssim needs images of at least 11x11, got {f.shape[:2]}.")
    f, g = _unit_scale(f, g, normalized, sensor, max_value, "ssim")
    return float(
        structural_similarity(
            g,
            f,
            data_range=1.0,
            channel_axis=-1,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            K1=0.01,
            K2=0.03,
        )
    )


def evaluate_rr(
    fused,
    gt,
    *,
    sensor: str | Sensor | None = None,
    max_value: float | None = None,
    normalized: bool = False,
    dim_cut: int = 0,
    ratio: int = RATIO,
    block_size: int = Q_BLOCK,
) -> dict[str, float]:
    """Reduced-resolution (reference) evaluation, toolbox-exact.

    Args:
        fused: fused image `(H, W, C)`.
        gt: ground truth `(H, W, C)`.
        sensor: sensor name or `Sensor` (max DN and a band-count check).
        max_value: maximum DN (overrides the sensor's); one of `sensor` /
            `max_value` is required (PSNR/SSIM and Q2n need the scale).
        normalized: True when the inputs are in [0, 1] rather than DN.
        dim_cut: toolbox border cut (21 for the 256 × 256 RR test images,
            0 for patches); keeps rows/cols `dim_cut-1 : N-dim_cut`.
        ratio: resolution ratio for ERGAS (4).
        block_size: Q / Q2n block side (32).

    Returns:
        dict with `q2n`, `q_avg`, `sam` (degrees), `ergas`, `scc`, `psnr` (dB),
        `ssim`.

    Raises:
        ValueError: bad shapes or band counts, NaN / inf, no DN scale, or
            `fused` and `gt` on different scales: one normalised to [0, 1]
            (mean |x| <= 1) and the other in DN (mean > 1.5), their means more
            than 20x apart (the message names which is which and the fix), or
            `normalized=True` with DN inputs. It warns instead when the gap
            may be legitimate (e.g. a near-black fused image) or when both look
            normalised but `normalized=False` (Q2n, PSNR and SSIM would be
            wrong). See `keras_pansharp.metrics._inputs`.

    For images too large for memory, `evaluate_rr_windowed` gives the same
    numbers window by window.

    Example:

    >>> scores = evaluate_rr(fused, gt, sensor="wv3", dim_cut=21)  # doctest: +SKIP
    """
    f = _as_image(fused, "fused")
    g = _as_image(gt, "gt")
    _same_shape(f, g, "fused", "gt")
    _check_bands(g, sensor, "gt")
    scale = _resolve_scale(sensor, max_value)
    if scale is None:
        raise ValueError("evaluate_rr needs the DN scale: pass sensor= or max_value=.")
    _check_scales(
        {"gt": _scale_stats(g), "fused": _scale_stats(f)},
        "gt",
        normalized=normalized,
        scale=scale,
        fn="evaluate_rr",
    )
    f, g = _to_dn((f, g), normalized, scale)
    f, g = border_cut(f, int(dim_cut)), border_cut(g, int(dim_cut))
    return {
        "q2n": _q2n_dn(f, g, int(block_size)),
        "q_avg": q_avg(f, g, block_size),
        "sam": sam(f, g),
        "ergas": ergas(f, g, ratio),
        "scc": scc(f, g),
        "psnr": psnr(f, g, max_value=scale),
        "ssim": ssim(f, g, max_value=scale),
    }
