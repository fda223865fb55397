"""Full-resolution (no-reference) metrics, toolbox-exact (NumPy float64).

D_λ, D_s and QNR; Khan's D_λ^K and HQNR; `evaluate_fr`, which computes all
five sharing the expensive steps (and adds Scarpa & Ciotola's D_ρ and
reprojection indices, `spatial_consistency` and `reprojection`). They
reproduce the MATLAB pan-sharpening toolbox behind the community's published full-resolution tables (see
`REFERENCE.md` §6). LMS = interp23tap(ms_lr), the PAN low pass and the MTF
filtering come from `keras_pansharp.signal`; the Q index of D_λ / D_s is the
block Q of `keras_pansharp.metrics.q_index` (with its flat-block rule) and
D_λ^K uses Q2n. Input conventions: see `keras_pansharp.metrics._inputs`; only
D_λ^K (Q2n casts to uint16) depends on the DN scale.
"""

from __future__ import annotations

import numpy as np

from keras_pansharp.metrics._inputs import (
    Q_BLOCK,
    RATIO,
    _as_image,
    _check_bands,
    _check_scales,
    _fr_inputs,
    _pan,
    _resolve_scale,
    _same_shape,
    _scale_stats,
    _to_dn,
)
from keras_pansharp.metrics.q_index import (
    _block_groups,
    _block_q_bands,
    _block_q_pairs,
    _q2n_dn,
)
from keras_pansharp.metrics.reprojection import _reprojection_dn
from keras_pansharp.metrics.spatial_consistency import _d_rho
from keras_pansharp.sensors import Sensor

__all__ = ["d_lambda", "d_s", "qnr", "d_lambda_k", "hqnr", "evaluate_fr"]


# ----------------------------------------------------- FR helpers (signal)
def _signal():
    from keras_pansharp import signal as sig

    return sig


def _lms(ms_lr: np.ndarray) -> np.ndarray:
    return np.asarray(_signal().interp23tap(ms_lr, ratio=RATIO), dtype=np.float64)


def _lms_or(lms, ms: np.ndarray, f: np.ndarray) -> np.ndarray:
    if lms is None:
        return _lms(ms)
    lms = _as_image(lms, "lms")
    _same_shape(lms, f, "lms", "fused")
    return lms


def d_lambda(
    fused,
    ms_lr,
    *,
    lms=None,
    block_size: int = Q_BLOCK,
    p: int = 1,
) -> float:
    """Spectral distortion D_λ of QNR (at PAN scale).

    D_λ = (mean over band pairs i < j of |Q(F_i, F_j) − Q(LMS_i, LMS_j)|^p)^(1/p),
    Q the mean UIQI over distinct `block_size` blocks and
    LMS = interp23tap(ms_lr). Scale invariant.

    Args:
        fused: fused image `(H, W, C)`, C >= 2.
        ms_lr: low-resolution MS `(H/4, W/4, C)`.
        lms: optional precomputed interp23tap(ms_lr) `(H, W, C)`.
        block_size: block side (32).
        p: exponent (1).

    Returns:
        D_λ in [0, 1] (0 is best).
    """
    f, ms, _ = _fr_inputs(fused, ms_lr)
    if f.shape[2] < 2:
        raise ValueError("d_lambda needs at least 2 bands.")
    lm = _lms_or(lms, ms, f)
    return _d_lambda(f, lm, int(block_size), p)


def _d_lambda(f, lm, s, p, groups=None):
    gf, gl = (
        groups if groups is not None else (_block_groups(f, s), _block_groups(lm, s))
    )
    qf = _block_q_pairs(gf)
    ql = _block_q_pairs(gl)
    iu = np.triu_indices(f.shape[2], k=1)
    diff = np.abs(qf[iu] - ql[iu]) ** p
    return float(np.mean(diff) ** (1.0 / p))


def pan_lp(p: np.ndarray) -> np.ndarray:
    sig = _signal()
    small = np.asarray(sig.imresize_bicubic(p[:, :, 0], 1.0 / RATIO), np.float64)
    if small.ndim == 2:
        small = small[:, :, None]
    return np.asarray(sig.interp23tap(small, ratio=RATIO), dtype=np.float64)


def d_s(
    fused,
    ms_lr,
    pan,
    *,
    lms=None,
    pan_lr=None,
    block_size: int = Q_BLOCK,
    q: int = 1,
) -> float:
    """Spatial distortion D_s of QNR.

    PAN_LP = interp23tap(imresize(PAN, 1/4)) (MATLAB bicubic with
    antialiasing); D_s = (mean over bands |Q(F_b, PAN) − Q(LMS_b, PAN_LP)|^q)^(1/q),
    same block Q as `d_lambda`. Scale invariant.

    Args:
        fused: fused image `(H, W, C)`.
        ms_lr: low-resolution MS `(H/4, W/4, C)`.
        pan: PAN `(H, W)` or `(H, W, 1)`.
        lms: optional precomputed interp23tap(ms_lr).
        pan_lr: optional precomputed imresize(PAN, 1/4) `(H/4, W/4)`.
        block_size: block side (32).
        q: exponent (1).

    Returns:
        D_s in [0, 1] (0 is best).
    """
    f, ms, pn = _fr_inputs(fused, ms_lr, pan)
    lm = _lms_or(lms, ms, f)
    plp = _pan_lp_or(pan_lr, pn, ms)
    return _d_s(f, lm, pn, plp, int(block_size), q)


def _d_s(f, lm, pn, plp, s, q, groups=None):
    gf, gl = (
        groups if groups is not None else (_block_groups(f, s), _block_groups(lm, s))
    )
    qh = _block_q_bands(gf, _block_groups(pn, s))
    ql = _block_q_bands(gl, _block_groups(plp, s))
    return float(np.mean(np.abs(qh - ql) ** q) ** (1.0 / q))


def qnr(
    fused,
    ms_lr,
    pan,
    *,
    lms=None,
    pan_lr=None,
    block_size: int = Q_BLOCK,
    alpha: float = 1.0,
    beta: float = 1.0,
) -> float:
    """QNR = (1 − D_λ)^α · (1 − D_s)^β (1 is best; scale invariant).

    Args:
        fused: fused image `(H, W, C)`.
        ms_lr: low-resolution MS `(H/4, W/4, C)`.
        pan: PAN `(H, W)` or `(H, W, 1)`.
        lms: optional precomputed interp23tap(ms_lr).
        pan_lr: optional precomputed imresize(PAN, 1/4).
        block_size: block side (32).
        alpha, beta: exponents (1).

    Returns:
        QNR in [0, 1].
    """
    f, ms, pn = _fr_inputs(fused, ms_lr, pan)
    lm = _lms_or(lms, ms, f)
    plp = _pan_lp_or(pan_lr, pn, ms)
    s = int(block_size)
    dl = _d_lambda(f, lm, s, 1)
    ds = _d_s(f, lm, pn, plp, s, 1)
    return float((1 - dl) ** alpha * (1 - ds) ** beta)


def _pan_lp_or(pan_lr, pn: np.ndarray, ms: np.ndarray) -> np.ndarray:
    if pan_lr is None:
        return pan_lp(pn)
    plr = _pan(pan_lr, "pan_lr")
    if plr.shape[:2] != ms.shape[:2]:
        raise ValueError(
            f"pan_lr has shape {plr.shape[:2]}, expected {ms.shape[:2]} (ms_lr)."
        )
    return np.asarray(_signal().interp23tap(plr, ratio=RATIO), np.float64)


def _mtf_filter(x: np.ndarray, sensor) -> np.ndarray:
    return np.asarray(_signal().mtf_filter(x, sensor), dtype=np.float64)


def d_lambda_k(
    fused,
    ms_lr,
    *,
    sensor: str | Sensor,
    lms=None,
    normalized: bool = False,
    max_value: float | None = None,
    block_size: int = Q_BLOCK,
) -> float:
    """Khan's spectral distortion D_λ^K = 1 − Q2n(LMS, MTF(F)) at PAN scale.

    The fused image is low-pass filtered with the sensor's MTF-matched kernels
    (no decimation) and compared with LMS = interp23tap(ms_lr) by Q2n on
    `block_size` blocks (uint16 DN quantisation).

    Args:
        fused: fused image `(H, W, C)`, H and W multiples of `block_size`.
        ms_lr: low-resolution MS `(H/4, W/4, C)`.
        sensor: sensor name or `Sensor` (MTF gains, max DN).
        lms: optional precomputed interp23tap(ms_lr).
        normalized: True when inputs are in [0, 1] (scaled by the max DN).
        max_value: maximum DN, overriding the sensor's.
        block_size: block side (32).

    Returns:
        D_λ^K in [0, 1] (0 is best).
    """
    f, ms, _ = _fr_inputs(fused, ms_lr)
    _check_bands(f, sensor, "fused")
    lm = _lms_or(lms, ms, f)
    f, lm = _to_dn((f, lm), normalized, _resolve_scale(sensor, max_value))
    return _d_lambda_k(f, lm, sensor, int(block_size))


def _d_lambda_k(f, lm, sensor, s):
    if f.shape[0] % s or f.shape[1] % s:
        raise ValueError(
            f"d_lambda_k needs H and W multiples of {s} (toolbox), got {f.shape[:2]}."
        )
    return 1.0 - _q2n_dn(_mtf_filter(f, sensor), lm, s)


def hqnr(
    fused,
    ms_lr,
    pan,
    *,
    sensor: str | Sensor,
    lms=None,
    pan_lr=None,
    normalized: bool = False,
    max_value: float | None = None,
    block_size: int = Q_BLOCK,
) -> float:
    """HQNR = (1 − D_λ^K)(1 − D_s) (1 is best). See `d_lambda_k`, `d_s`."""
    r = evaluate_fr(
        fused,
        ms_lr,
        pan,
        sensor=sensor,
        max_value=max_value,
        normalized=normalized,
        lms=lms,
        pan_lr=pan_lr,
        block_size=block_size,
    )
    return r["hqnr"]


def evaluate_fr(
    fused,
    ms_lr,
    pan,
    *,
    sensor: str | Sensor,
    max_value: float | None = None,
    normalized: bool = False,
    lms=None,
    pan_lr=None,
    block_size: int = Q_BLOCK,
    consistency: bool = True,
) -> dict[str, float]:
    """Full-resolution (no-reference) evaluation, toolbox-exact.

    Args:
        fused: fused image `(H, W, C)` at PAN scale.
        ms_lr: the MS input `(H/4, W/4, C)`.
        pan: the PAN input `(H, W)` or `(H, W, 1)`.
        sensor: sensor name or `Sensor` (MTF gains and max DN); for an
            unregistered sensor pass `generic_sensor(C)`.
        max_value: maximum DN, overriding the sensor's (for `normalized`).
        normalized: True when all three inputs are in [0, 1]; they are scaled
            to DN by the max DN (only D_λ^K's Q2n quantisation depends on it).
        lms: optional precomputed interp23tap(ms_lr).
        pan_lr: optional precomputed imresize(PAN, 1/4).
        block_size: Q block side (32).
        consistency: also compute Scarpa & Ciotola's indices (about doubles
            the time; False skips them).

    Returns:
        dict with `d_lambda`, `d_s`, `qnr`, `d_lambda_k`, `hqnr` (toolbox),
        and, with `consistency`, Scarpa & Ciotola's `d_rho`
        (`spatial_consistency.d_rho`, 0 is best), `r_q2n`, `r_sam`, `r_ergas`
        (`reprojection.reprojection`, at MS scale) (floats).

    Raises:
        ValueError: bad shapes or band counts, NaN / inf, or inputs on
            different scales: one of `fused`, `ms_lr`, `pan` (`lms`,
            `pan_lr`) normalised to [0, 1] (mean |x| <= 1) and another in DN
            (mean > 1.5), their means more than 20x apart (the message names
            which is which and the fix), or `normalized=True` with DN inputs.
            The check costs a few passes over the data. It warns instead when
            the gap may be legitimate (e.g. a near-black fused image) or when
            every input looks normalised but `normalized=False` (only D_λ^K
            depends on the scale). See `keras_pansharp.metrics._inputs`.

    For scenes too large for memory, `evaluate_fr_windowed` gives the same
    numbers window by window.

    Example:

    >>> scores = evaluate_fr(fused, ms_lr, pan, sensor="wv3")  # doctest: +SKIP
    >>> scores["hqnr"]  # doctest: +SKIP
    """
    f, ms, pn = _fr_inputs(fused, ms_lr, pan)
    _check_bands(f, sensor, "fused")
    scale = _resolve_scale(sensor, max_value)
    lm = None if lms is None else _as_image(lms, "lms")
    plr = None if pan_lr is None else _pan(pan_lr, "pan_lr")
    named = {"ms_lr": ms, "fused": f, "pan": pn, "lms": lm, "pan_lr": plr}
    _check_scales(
        {k: _scale_stats(v) for k, v in named.items() if v is not None},
        "ms_lr",
        normalized=normalized,
        scale=scale,
        fn="evaluate_fr",
    )
    f, ms, pn = _to_dn((f, ms, pn), normalized, scale)
    if lm is not None:
        (lm,) = _to_dn((lm,), normalized, scale)
    if lm is None:
        lm = _lms(ms)
    else:
        _same_shape(lm, f, "lms", "fused")
    if plr is not None:
        (plr,) = _to_dn((plr,), normalized, scale)
    plp = _pan_lp_or(plr, pn, ms)
    s = int(block_size)
    groups = (_block_groups(f, s), _block_groups(lm, s))  # shared by D_lambda, D_s
    dl = _d_lambda(f, lm, s, 1, groups)
    ds = _d_s(f, lm, pn, plp, s, 1, groups)
    del groups
    dk = _d_lambda_k(f, lm, sensor, s)
    scores = {
        "d_lambda": dl,
        "d_s": ds,
        "qnr": float((1 - dl) * (1 - ds)),
        "d_lambda_k": dk,
        "hqnr": float((1 - dk) * (1 - ds)),
    }
    if consistency:
        scores["d_rho"] = _d_rho(f, pn)
        scores.update(_reprojection_dn(f, ms, pn, sensor, s))
    return scores
