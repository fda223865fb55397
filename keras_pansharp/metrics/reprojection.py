"""Scarpa & Ciotola's reprojection indices R-Q2n, R-SAM, R-ERGAS (NumPy).

The fused image is brought back to the MS scale the way the sensor would see
it (MTF low pass, then decimation on the grid that best matches the PAN) and
compared with the MS it was made from with the reduced-resolution indices:
R-Q2n = Q2n(MS, F_LR) (32 x 32 blocks at MS scale, uint16 DN), R-SAM =
SAM(MS, F_LR) in degrees, R-ERGAS = ERGAS(MS, F_LR) with ratio 4 (the MS
means in the denominator). A consistent fusion has R-Q2n near 1, R-SAM and
R-ERGAS near 0.

Written from the authors' evaluation tool, repository
`matciotola/fr-pansh-eval-tool`: `MATLAB/resize_w_mtf.m`,
`MATLAB/generate_MTF_variables.m`, `MATLAB/genMTF.m`,
`MATLAB/consistency_metrics_evaluation.m` and `MATLAB/main.m`, checked
against `NumPy/metrics.py` (`resize_with_mtf`, `coregistration`,
`ReproQ2n`, `ReproSAM`, `ReproERGAS`) in the same repository. As there:

- kernels: the toolbox's `genMTF` kernels of the sensor's MS bands, with
  negative taps set to 0 and renormalised to unit sum (`genMTF.m` of this
  tool, "added by G. Scarpa"; the toolbox's own kernels are not
  renormalised), applied as correlation with replicate borders;
- decimation offsets (co-registration, `generate_MTF_variables.m`): the PAN
  filtered with the first band's kernel is decimated at each of the 4 x 4
  offsets (r, c); for each band the offset kept is the one maximising the
  mean local correlation (`local_cross_correlation`, half width 2) between
  the MS band and that decimated PAN (the first maximum in MATLAB's
  column-major order on ties); F_LR_b = MTF_b(F)[r_b::4, c_b::4];
- Q2n, SAM, ERGAS are the toolbox's (`keras_pansharp.metrics.q_index.q2n`,
  `reduced_resolution.sam` / `ergas`), no border cut (`flag_cut_bounds = 0`
  in `main.m`).

The sensor's MS Nyquist gains come from `keras_pansharp.sensors` (for QB,
IKONOS, GeoEye1, WV2 and WV3 they are those of the tool's `genMTF.m`; for
other sensors the tool falls back to 0.3 for every band: pass
`generic_sensor(C)` to reproduce that). Float64 throughout (MATLAB's
co-registration correlation runs in single precision; only exact ties could
differ).

Reference: G. Scarpa and M. Ciotola, "Full-resolution quality assessment
for pansharpening", Remote Sensing 14(8), 1808, 2022 (arXiv:2108.06144).
"""

from __future__ import annotations

import numpy as np

from keras_pansharp.metrics._inputs import (
    Q_BLOCK,
    RATIO,
    _check_bands,
    _fr_inputs,
    _resolve_scale,
    _to_dn,
)
from keras_pansharp.metrics.q_index import _q2n_dn
from keras_pansharp.metrics.reduced_resolution import ergas, sam
from keras_pansharp.metrics.spatial_consistency import _lcc
from keras_pansharp.sensors import Sensor

__all__ = ["reproject", "reprojection"]

#: Half width of the co-registration correlation (`generate_MTF_variables.m`).
COREG_HALF_WIDTH = 2


def reprojection_kernels(sensor: str | Sensor, num_bands: int) -> np.ndarray:
    """The tool's MTF kernels: `genMTF`, clipped at 0, unit sum, `(41, 41, C)`."""
    from keras_pansharp.signal import mtf_kernels

    h = np.maximum(0.0, mtf_kernels(sensor, RATIO, num_bands=num_bands))
    return h / np.sum(h, axis=(0, 1))


def _coregistration_scores(ms: np.ndarray, pan_lp: np.ndarray) -> np.ndarray:
    """Mean ρ of each MS band with each decimation of PAN_LP, `(4, 4, C)`."""
    h, w = ms.shape[:2]
    rho = np.empty((RATIO, RATIO, ms.shape[2]))
    for i in range(RATIO):
        for j in range(RATIO):
            p = pan_lp[i::RATIO, j::RATIO, None][:h, :w]
            rho[i, j] = np.mean(_lcc(ms, p, COREG_HALF_WIDTH), axis=(0, 1))
    return rho


def _best_offsets(rho: np.ndarray) -> list[tuple[int, int]]:
    """Per band, the (row, col) of the maximum, first in column-major order."""
    out = []
    for b in range(rho.shape[2]):
        pos = int(np.argmax(rho[:, :, b].ravel(order="F")))
        out.append((pos % RATIO, pos // RATIO))
    return out


def _reproject(f, ms, pn, sensor, offsets=None):
    """(F_LR, offsets) of validated float64 inputs."""
    from keras_pansharp.signal import correlate_nearest, mtf_filter

    kernels = reprojection_kernels(sensor, f.shape[2])
    if offsets is None:
        pan_lp = correlate_nearest(pn[:, :, 0], kernels[:, :, 0])
        offsets = _best_offsets(_coregistration_scores(ms, pan_lp))
    fm = mtf_filter(f, kernels)
    h, w = ms.shape[:2]
    out = np.empty(ms.shape)
    for b, (r, c) in enumerate(offsets):
        out[:, :, b] = fm[r::RATIO, c::RATIO, b][:h, :w]
    return out, offsets


def _inputs(fused, ms_lr, pan, sensor):
    f, ms, pn = _fr_inputs(fused, ms_lr, pan)
    _check_bands(f, sensor, "fused")
    return f, ms, pn


def reproject(fused, ms_lr, pan, *, sensor: str | Sensor) -> np.ndarray:
    """The fused image seen at MS scale (`resize_w_mtf.m`).

    Each band is filtered with the tool's MTF kernel of the sensor (replicate
    borders) and decimated by 4 at the offset that best co-registers the MS
    with the PAN (see the module docstring). Units are kept (DN in, DN out).

    Args:
        fused: fused image `(H, W, C)`.
        ms_lr: the MS input `(H/4, W/4, C)` (for the co-registration).
        pan: the PAN input `(H, W)` or `(H, W, 1)`.
        sensor: sensor name or `Sensor` (MTF gains, band count).

    Returns:
        `(H/4, W/4, C)` float64.

    Raises:
        ValueError: shapes or band counts disagree, NaN / inf.

    Example:

    >>> import numpy as np
    >>> import keras_pansharp as kp
    >>> ms = np.random.default_rng(0).uniform(100, 900, (16, 16, 4))
    >>> pan = np.mean(kp.interp23tap(ms), axis=-1)
    >>> reproject(kp.interp23tap(ms), ms, pan, sensor="qb").shape
    (16, 16, 4)
    """
    f, ms, pn = _inputs(fused, ms_lr, pan, sensor)
    return _reproject(f, ms, pn, sensor)[0]


def _reprojection_dn(f, ms, pn, sensor, s, offsets=None) -> dict[str, float]:
    lr, _ = _reproject(f, ms, pn, sensor, offsets)
    return _reprojection_scores(lr, ms, s)


def _q2n_or_nan(lr, ms, s) -> float:
    """R-Q2n, NaN where the MS is too small for the toolbox's block padding.

    `q2n.m` mirrors at most the image itself (an MS under 16 x 16 pixels for
    32-pixel blocks fails in MATLAB); `evaluate_fr` on such small patches
    keeps its other scores and reports NaN here. `reprojection` raises.
    """
    h, w = ms.shape[:2]
    if (-h) % s > h or (-w) % s > w:
        return float("nan")
    return _q2n_dn(lr, ms, s)


def _reprojection_scores(lr, ms, s) -> dict[str, float]:
    return {
        "r_q2n": _q2n_or_nan(lr, ms, s),
        "r_sam": sam(lr, ms),
        "r_ergas": ergas(lr, ms, RATIO),
    }


def reprojection(
    fused,
    ms_lr,
    pan,
    *,
    sensor: str | Sensor,
    normalized: bool = False,
    max_value: float | None = None,
    block_size: int = Q_BLOCK,
) -> dict[str, float]:
    """Reprojection indices R-Q2n, R-SAM, R-ERGAS (Scarpa & Ciotola 2022).

    F_LR = `reproject(fused, ms_lr, pan)`; R-Q2n = Q2n(F_LR, MS) on
    `block_size` blocks at MS scale (uint16 DN quantisation, symmetric
    padding to whole blocks as `q2n`), R-SAM = SAM(F_LR, MS) in degrees,
    R-ERGAS = ERGAS(F_LR, MS) with ratio 4.

    Args:
        fused: fused image `(H, W, C)` at PAN scale.
        ms_lr: the MS input `(H/4, W/4, C)`.
        pan: the PAN input `(H, W)` or `(H, W, 1)`.
        sensor: sensor name or `Sensor` (MTF gains, max DN, band count).
        normalized: True when the inputs are in [0, 1]; they are scaled to DN
            by `max_value` or the sensor's max DN (only R-Q2n depends on it).
        max_value: maximum DN, overriding the sensor's.
        block_size: Q2n block side (32).

    Returns:
        dict with `r_q2n` (in [0, 1], 1 is best), `r_sam` (degrees, 0 is
        best) and `r_ergas` (0 is best).

    Raises:
        ValueError: shapes or band counts disagree, NaN / inf,
            `normalized=True` without a scale, an MS under
            `block_size / 2` pixels a side (`evaluate_fr` gives NaN R-Q2n).

    Example:

    >>> import numpy as np
    >>> import keras_pansharp as kp
    >>> ms = np.random.default_rng(0).uniform(100, 900, (16, 16, 4))
    >>> pan = np.mean(kp.interp23tap(ms), axis=-1)
    >>> sorted(reprojection(kp.interp23tap(ms), ms, pan, sensor="qb"))
    ['r_ergas', 'r_q2n', 'r_sam']
    """
    f, ms, pn = _inputs(fused, ms_lr, pan, sensor)
    s = int(block_size)
    if (-ms.shape[0]) % s > ms.shape[0] or (-ms.shape[1]) % s > ms.shape[1]:
        raise ValueError(
            f"ms_lr is {ms.shape[0]}x{ms.shape[1]}: too small for R-Q2n on "
            f"{s}x{s} blocks (the toolbox mirrors at most the image; needs at "
            f"least {s // 2}x{s // 2} MS pixels)."
        )
    f, ms, pn = _to_dn((f, ms, pn), normalized, _resolve_scale(sensor, max_value))
    return _reprojection_dn(f, ms, pn, sensor, s)
