"""Scarpa & Ciotola's full-resolution spatial index D_ρ (NumPy float64).

D_ρ measures how well the fused bands follow the PAN's local structure: the
local correlation coefficient ρ between every fused band and the PAN on
small windows, clipped to [-1, 1]; D_ρ = mean over pixels and bands of
1 − ρ (0 is best, 2 is worst).

Written from the authors' evaluation tool, repository
`matciotola/fr-pansh-eval-tool`: `MATLAB/D_rho.m`,
`MATLAB/local_cross_correlation.m` and `MATLAB/main.m` (the call
`D_rho(P, I_PAN, ratio/2)`), checked against the NumPy port in the same
repository (`NumPy/metrics.py`, `DRho`, `local_cross_correlation`).
Conventions, as in `local_cross_correlation.m`:

- half width w = ceil(ratio / 2) (2 for ratio 4); every window is 2w x 2w
  and, for the pixel (i, j), covers rows i−w+1 .. i+w and columns
  j−w+1 .. j+w (cumulative-sum box filter: one pixel more below / right
  than above / left), the image zero-padded by w pixels;
- each image is centred by its local mean (sum / (2w)²; the zero padding
  counts), the centred image is zero-padded again and
  ρ = Σ x̃ỹ / (sqrt(max(ε, Σ x̃²) · max(ε, Σ ỹ²)) + ε), ε = 1e-20, the sums
  over the same window;
- D_ρ = mean(1 − clip(ρ, −1, 1)) over all pixels and bands (MATLAB `mean2`
  of the 3-D map; no maximum over bands).

A flat (constant) band has ρ = 0 away from the border (the zero padding
makes its centred values non-zero near the border, as in MATLAB).

Deliberate deviation: MATLAB casts to single precision; this module works
in float64, as the authors' NumPy port (differences ~1e-7 relative). The
NumPy port's extra clipping of Σ x̃ỹ to [ε, max] (which turns negative
correlations into 0) is not in the MATLAB code and is not reproduced.

Reference: G. Scarpa and M. Ciotola, "Full-resolution quality assessment
for pansharpening", Remote Sensing 14(8), 1808, 2022 (arXiv:2108.06144).

Example:

>>> import numpy as np
>>> pan = np.random.default_rng(0).uniform(0, 2047, (64, 64))
>>> fused = np.stack([pan * 0.5, pan * 0.8], axis=-1)  # locally proportional
>>> round(d_rho(fused, pan), 6)
0.0
"""

from __future__ import annotations

import math

import numpy as np

from keras_pansharp.metrics._inputs import RATIO, _as_image, _pan

__all__ = ["d_rho", "local_cross_correlation"]

#: ε of `local_cross_correlation.m` (a floor on the window energies).
EPS = 1e-20


def half_width(ratio: int) -> int:
    """Half width w = ceil(ratio / 2) of the D_ρ windows (2w x 2w).

    Raises:
        ValueError: `ratio` is not a positive integer.
    """
    if isinstance(ratio, bool) or int(ratio) != ratio or int(ratio) < 1:
        raise ValueError(f"ratio must be a positive integer, got {ratio!r}.")
    return math.ceil(int(ratio) / 2)


def _box_sum(a: np.ndarray, k: int) -> np.ndarray:
    """Sums over k x k windows of `a` (valid part: `(H-k+1, W-k+1, ...)`).

    Shifted-slice additions (rows, then columns) in a fixed order, so equal
    inputs give bit-equal outputs whatever the array's extent (the windowed
    evaluation relies on it) and no long cumulative sums lose precision.
    """
    n0, n1 = a.shape[0] - k + 1, a.shape[1] - k + 1
    rows = a[0:n0].copy()
    for t in range(1, k):
        rows += a[t : t + n0]
    out = rows[:, 0:n1].copy()
    for t in range(1, k):
        out += rows[:, t : t + n1]
    return out


def _lcc_padded(xe: np.ndarray, ye: np.ndarray, inside: np.ndarray, w: int):
    """ρ map of a region given with a 2w halo (zeros outside the scene).

    Args:
        xe: `(h + 4w, v + 4w, C)` float64, the scene values around the wanted
            `(h, v)` region, zeros where the halo falls outside the scene.
        ye: `(h + 4w, v + 4w, 1)` or `(..., C)`, the same for the second image.
        inside: `(h + 4w, v + 4w)` bool, True on scene pixels.
        w: half width.

    Returns:
        `(h, v, C)` ρ (not clipped). Computed band by band (memory).
    """
    k = 2 * w
    n = float(4 * w * w)
    m = inside[w : xe.shape[0] - w, w : xe.shape[1] - w]

    def centred(a):
        # Local means at rows/cols -w .. h+w-1 of the region (windows
        # [i-w+1, i+w]), the centred image zero outside the scene.
        return ((a[w:-w, w:-w] - _box_sum(a[1:, 1:], k) / n) * m)[1:, 1:]

    def energy(a):
        return np.maximum(EPS, _box_sum(a * a, k))

    single = ye.shape[2] == 1
    if single:
        yc = centred(ye[:, :, 0])
        syy = energy(yc)
    h, v = xe.shape[0] - 4 * w, xe.shape[1] - 4 * w
    out = np.empty((h, v, xe.shape[2]))
    for b in range(xe.shape[2]):
        if not single:
            yc = centred(ye[:, :, b])
            syy = energy(yc)
        xc = centred(xe[:, :, b])
        # Window energies and cross term at rows/cols 0 .. h-1.
        out[:, :, b] = _box_sum(xc * yc, k) / (np.sqrt(energy(xc) * syy) + EPS)
    return out


def _lcc(x: np.ndarray, y: np.ndarray, w: int) -> np.ndarray:
    """ρ map of whole images `(H, W, C)` and `(H, W, 1 or C)` (zero padding)."""
    pad = ((2 * w, 2 * w), (2 * w, 2 * w), (0, 0))
    inside = np.pad(np.ones(x.shape[:2], bool), pad[:2])
    return _lcc_padded(np.pad(x, pad), np.pad(y, pad), inside, w)


def local_cross_correlation(x, y, half_width: float = 2) -> np.ndarray:
    """Local correlation coefficient map (`local_cross_correlation.m`).

    Args:
        x: image `(H, W, C)` or `(H, W)`.
        y: image `(H, W)`, `(H, W, 1)` (compared with every band of `x`) or
            `(H, W, C)`.
        half_width: w (rounded up); windows are 2w x 2w.

    Returns:
        `(H, W, C)` float64 map of ρ (not clipped; see the module docstring).

    Raises:
        ValueError: bad shapes, NaN / inf, `half_width` not positive.

    Example:

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(16, 16))
    >>> local_cross_correlation(x, 2 * x + 1, 2).shape
    (16, 16, 1)
    """
    hw = float(half_width)
    if not np.isfinite(hw) or hw <= 0:
        raise ValueError(f"half_width must be positive, got {half_width!r}.")
    a = _as_image(x, "x")
    b = _as_image(y, "y")
    if a.shape[:2] != b.shape[:2] or b.shape[2] not in (1, a.shape[2]):
        raise ValueError(
            f"x has shape {a.shape} and y {b.shape}; expected the same (H, W) and "
            "y with one band or as many bands as x."
        )
    return _lcc(a, b, math.ceil(hw))


def d_rho(fused, pan, ratio: int = RATIO) -> float:
    """D_ρ, Scarpa & Ciotola's spatial consistency index (`D_rho.m`).

    ρ = local correlation coefficient between each fused band and the PAN on
    2w x 2w windows, w = ceil(ratio / 2) (4 x 4 for ratio 4), clipped to
    [−1, 1]; D_ρ = mean over pixels and bands of 1 − ρ. Scale invariant
    (DN or [0, 1] inputs alike).

    Args:
        fused: fused image `(H, W, C)` at PAN scale.
        pan: PAN `(H, W)` or `(H, W, 1)`.
        ratio: PAN / MS resolution ratio (4), which sets the window size.

    Returns:
        D_ρ in [0, 2] (0 is best: every band locally proportional to the PAN).

    Raises:
        ValueError: shapes differ, PAN with more than one band, NaN / inf,
            or `ratio` not a positive integer.

    Example:

    >>> import numpy as np
    >>> pan = np.random.default_rng(0).uniform(0, 2047, (64, 64))
    >>> noisy = pan[:, :, None] + np.random.default_rng(1).normal(0, 500, (64, 64, 4))
    >>> 0.0 < d_rho(noisy, pan) < 2.0
    True
    """
    w = half_width(ratio)
    f = _as_image(fused, "fused")
    p = _pan(pan)
    if p.shape[:2] != f.shape[:2]:
        raise ValueError(
            f"pan is {p.shape[0]}x{p.shape[1]} but fused is "
            f"{f.shape[0]}x{f.shape[1]}; they must be equal."
        )
    return _d_rho(f, p, w)


def _d_rho_sum(rho: np.ndarray) -> float:
    """Σ (1 − clip(ρ, −1, 1)) of a ρ map (windowed evaluation sums these)."""
    return float(np.sum(1.0 - np.clip(rho, -1.0, 1.0)))


def _d_rho(f: np.ndarray, p: np.ndarray, w: int = half_width(RATIO)) -> float:
    """D_ρ of validated float64 `(H, W, C)` fused and `(H, W, 1)` PAN."""
    rho = _lcc(f, p, w)
    return _d_rho_sum(rho) / rho.size
