"""Exact (reference-toolbox) pan-sharpening metrics in NumPy float64.

These functions reproduce the MATLAB pan-sharpening toolbox behind the
community's published reduced-resolution (RR) and full-resolution (FR) tables
(see `REFERENCE.md` §6). They are vectorised: sliding windows use cumulative
sums, blocks use reshapes and batched matrix products; there is no Python loop
over pixels or blocks.

Conventions:

- Images are channels-last `(H, W, C)` arrays; a PAN image may be `(H, W)` or
  `(H, W, 1)`. Everything is computed in float64.
- The toolbox works in digital numbers (DN). Every function takes the data in
  DN by default. Pass `normalized=True` (with `max_value=` or `sensor=`) when
  the arrays are scaled to [0, 1]; they are multiplied by the sensor's maximum
  DN first. Only Q2n (which casts to uint16) and PSNR / SSIM (which work on
  [0, 1] data) depend on the scale; the other metrics are scale invariant.
- Bad input (wrong rank, mismatched shapes or band counts, NaN / inf) raises
  `ValueError`.

Deliberate deviations from the toolbox (it returns NaN or Inf in these cases):

- `sam`: when every pixel has a zero spectrum in one of the images, 0.0.
- `ergas`: a band whose ground-truth mean is 0 contributes 0 if the fused band
  is also all zero, `inf` otherwise.
- block Q of `d_lambda` / `d_s` (the toolbox's `cov`-based `uqi`, NaN on flat
  blocks) uses the same rule as `q_avg`: where the two variances sum to 0,
  Q = 2·μx·μy / (μx² + μy²), and Q = 1 when both means are 0 as well.
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

import functools

import numpy as np

from keras_pansharp.sensors import Sensor, get_sensor

__all__ = [
    "sam",
    "ergas",
    "q_avg",
    "q2n",
    "scc",
    "psnr",
    "ssim",
    "d_lambda",
    "d_s",
    "qnr",
    "d_lambda_k",
    "hqnr",
    "evaluate_rr",
    "evaluate_fr",
    "onion_structure_tensor",
    "quantize_uint16",
]

RATIO = 4
Q_BLOCK = 32


# ----------------------------------------------------------------- validation
def _as_image(x, name: str, allow_2d: bool = True) -> np.ndarray:
    """Return `x` as a float64 `(H, W, C)` array or raise ValueError."""
    try:
        a = np.asarray(x)
    except Exception as e:  # pragma: no cover - exotic inputs
        raise ValueError(f"{name}: cannot convert to an array ({e}).") from e
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise ValueError(f"{name}: expected a numeric array, got dtype {a.dtype}.")
    if np.iscomplexobj(a):
        raise ValueError(f"{name}: complex values are not supported.")
    if a.ndim == 2 and allow_2d:
        a = a[:, :, None]
    if a.ndim != 3:
        raise ValueError(
            f"{name}: expected a channels-last image (H, W, C)"
            f"{' or (H, W)' if allow_2d else ''}, got shape {a.shape}."
        )
    if a.shape[0] < 1 or a.shape[1] < 1 or a.shape[2] < 1:
        raise ValueError(f"{name}: empty image of shape {a.shape}.")
    a = a.astype(np.float64, copy=False)
    if not np.all(np.isfinite(a)):
        bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
        raise ValueError(f"{name}: contains {bad} NaN or infinite values.")
    return a


def _same_shape(a: np.ndarray, b: np.ndarray, na: str, nb: str) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{na} has shape {a.shape} but {nb} has shape {b.shape}; "
            "they must be equal (H, W, C)."
        )


def _pan(pan, name: str = "pan") -> np.ndarray:
    p = _as_image(pan, name)
    if p.shape[2] != 1:
        raise ValueError(
            f"{name}: expected one band, (H, W) or (H, W, 1), got shape {p.shape}."
        )
    return p


def _resolve_scale(
    sensor: str | Sensor | None, max_value: float | None
) -> float | None:
    if max_value is not None:
        max_value = float(max_value)
        if not np.isfinite(max_value) or max_value <= 0:
            raise ValueError(f"max_value must be a positive number, got {max_value}.")
        return max_value
    if sensor is not None:
        return float(get_sensor(sensor).max_value)
    return None


def _to_dn(arrays, normalized: bool, scale: float | None):
    if not normalized:
        return arrays
    if scale is None:
        raise ValueError(
            "normalized=True needs the DN scale: pass max_value= or sensor=."
        )
    return tuple(a * scale for a in arrays)


def _check_bands(x: np.ndarray, sensor: str | Sensor | None, name: str) -> None:
    if sensor is None:
        return
    s = get_sensor(sensor)
    if x.shape[2] != s.num_bands:
        raise ValueError(
            f"{name} has {x.shape[2]} bands but sensor {s.name!r} has "
            f"{s.num_bands} (use sensor.rgbn() or generic_sensor for a subset)."
        )


def _cut(x: np.ndarray, dim_cut: int) -> np.ndarray:
    """Toolbox border cut: keeps 0-based rows/cols `dim_cut-1 : N-dim_cut`."""
    if dim_cut < 0:
        raise ValueError(f"dim_cut must be >= 0, got {dim_cut}.")
    if dim_cut == 0:
        return x
    h, w = x.shape[:2]
    if h - 2 * dim_cut + 1 < 1 or w - 2 * dim_cut + 1 < 1:
        raise ValueError(f"dim_cut={dim_cut} is too large for an image {h}x{w}.")
    return x[dim_cut - 1 : h - dim_cut, dim_cut - 1 : w - dim_cut]


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


# -------------------------------------------------------- UIQI (Wang & Bovik)
def _uiqi_from_moments(mx, my, vx, vy, cxy):
    """UIQI from means, variances and covariance (same normaliser).

    Follows the toolbox's `img_qi` conventions: where vx + vy == 0 and the
    means are not both 0, Q = 2·mx·my / (mx² + my²); where the full
    denominator is 0 otherwise, Q = 1.
    """
    msq = mx * mx + my * my
    vsum = vx + vy
    den = vsum * msq
    out = np.ones(np.broadcast(mx, my, vx, vy, cxy).shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        flat = (vsum == 0) & (msq != 0)
        out = np.where(flat, 2.0 * mx * my / msq, out)
        out = np.where(den != 0, 4.0 * cxy * mx * my / den, out)
    return out


def _window_sums(x: np.ndarray, k: int) -> np.ndarray:
    """Sums over every k x k window (valid region), separable cumulative sums."""
    c = np.cumsum(x, axis=0)
    c = np.concatenate([np.zeros_like(c[:1]), c], axis=0)
    c = c[k:] - c[:-k]
    c = np.cumsum(c, axis=1)
    c = np.concatenate([np.zeros_like(c[:, :1]), c], axis=1)
    return c[:, k:] - c[:, :-k]


def q_avg(fused, gt, block_size: int = Q_BLOCK) -> float:
    """Q index averaged over bands (toolbox `Q.m` / `img_qi`).

    Wang–Bovik UIQI on a sliding `block_size` window (step 1, valid region),
    averaged over the map, then over bands.

    Args:
        fused: fused image `(H, W, C)`.
        gt: reference image `(H, W, C)`; H, W >= block_size.
        block_size: window side (32).

    Returns:
        Q_avg in [-1, 1] (1 is perfect).
    """
    f = _as_image(fused, "fused")
    g = _as_image(gt, "gt")
    _same_shape(f, g, "fused", "gt")
    k = int(block_size)
    if f.shape[0] < k or f.shape[1] < k:
        raise ValueError(f"q_avg needs images of at least {k}x{k}, got {f.shape[:2]}.")
    n = float(k * k)
    # Shift each band by a (rounded) constant: integer data stay integer, so
    # window sums of flat windows stay exact; sums are better conditioned.
    cg = np.round(np.mean(g, axis=(0, 1)))
    cf = np.round(np.mean(f, axis=(0, 1)))
    gs = g - cg
    fs = f - cf
    sg = _window_sums(gs, k)
    sf = _window_sums(fs, k)
    sgg = _window_sums(gs * gs, k)
    sff = _window_sums(fs * fs, k)
    sgf = _window_sums(gs * fs, k)
    # Moments scaled by n^2 (the common factor cancels in UIQI).
    mg = sg + n * cg
    mf = sf + n * cf
    vg = n * sgg - sg * sg
    vf = n * sff - sf * sf
    cgf = n * sgf - sg * sf
    qmap = _uiqi_from_moments(mg, mf, vg, vf, cgf)
    return float(np.mean(np.mean(qmap, axis=(0, 1))))


# ------------------------------------------------------------------------ Q2n
def _onion_mult_literal(o1: np.ndarray, o2: np.ndarray) -> np.ndarray:
    """Toolbox `onion_mult` (Cayley–Dickson product) on the last axis."""
    n = o1.shape[-1]
    if n == 1:
        return o1 * o2

    def conj(v):
        return np.concatenate([v[..., :1], -v[..., 1:]], axis=-1)

    half = n // 2
    a, b = o1[..., :half], conj(o1[..., half:])
    c, d = o2[..., :half], conj(o2[..., half:])
    if n == 2:
        return np.concatenate([a * c - d * b, a * d + c * b], axis=-1)
    r1 = _onion_mult_literal(a, c)
    r2 = _onion_mult_literal(d, conj(b))
    r3 = _onion_mult_literal(conj(a), d)
    r4 = _onion_mult_literal(c, b)
    return np.concatenate([r1 - r2, r3 + r4], axis=-1)


@functools.lru_cache(maxsize=8)
def onion_structure_tensor(n: int) -> np.ndarray:
    """Structure constants of the toolbox's hypercomplex product.

    The product is bilinear, so `onion_mult(x, y)[k] = Σ_ij T[k, i, j] x_i y_j`.

    Args:
        n: number of components, a power of two.

    Returns:
        float64 array `T` of shape `(n, n, n)` with entries in {-1, 0, 1}.
    """
    if n < 1 or n & (n - 1):
        raise ValueError(f"n must be a power of two, got {n}.")
    eye = np.eye(n)
    prod = _onion_mult_literal(eye[:, None, :], eye[None, :, :])  # (i, j, k)
    t = np.transpose(prod, (2, 0, 1)).copy()
    t.setflags(write=False)
    return t


def quantize_uint16(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """MATLAB `uint16(x)`: round half away from zero, saturate to [0, 65535].

    Args:
        x: float array.
        out: optional output array (may be `x` itself: quantise in place).

    Returns:
        float64 array holding the integer values.
    """
    if out is None:
        out = np.array(x, dtype=np.float64)
    elif out is not x:
        np.copyto(out, x)
    # floor(x + 0.5) rounds half up exactly for every double except the one
    # just below 0.5 (x + 0.5 rounds to 1.0); negatives saturate to 0 anyway.
    np.putmask(out, out == np.nextafter(0.5, 0.0), 0.0)
    out += 0.5
    np.floor(out, out=out)
    return np.clip(out, 0.0, 65535.0, out=out)


def _blocks(x: np.ndarray, bh: int, bw: int) -> np.ndarray:
    """(H, W, C) with H % bh == W % bw == 0 -> (nblocks, bh*bw, C)."""
    h, w, c = x.shape
    y = x.reshape(h // bh, bh, w // bw, bw, c).transpose(0, 2, 1, 3, 4)
    y = y.reshape(-1, bh * bw, c)
    return y.copy() if np.shares_memory(y, x) else y


def _pad_symmetric_to(x: np.ndarray, s: int) -> np.ndarray:
    h, w = x.shape[:2]
    eh, ew = (-h) % s, (-w) % s
    if eh == 0 and ew == 0:
        return x
    if eh > h or ew > w:
        # The toolbox mirrors at most the image itself; np.pad would repeat.
        raise ValueError(f"image {h}x{w} is too small for {s}x{s} Q2n blocks.")
    return np.pad(x, ((0, eh), (0, ew), (0, 0)), mode="symmetric")


def _block_centered(x: np.ndarray, bh: int, bw: int, quantize: bool = False):
    """Blocks of x, their means and the centred blocks.

    Args:
        x: (H, W, C), H % bh == W % bw == 0.
        quantize: cast the blocks to uint16 values first (in place).

    Returns:
        (means (nb, C), centred (nb, bh*bw, C)), a new array. For integer
        data (uint16 DN) the means (sum / 2^k) and the deviations are exact,
        so flat blocks have exactly zero variance.
    """
    xb = _blocks(x, bh, bw)
    if quantize:
        quantize_uint16(xb, out=xb)
    m = np.mean(xb, axis=1)
    xb -= m[:, None, :]
    return m, xb


def _q2n_blocks(a, dg, b, df, n: int) -> np.ndarray:
    """Hypercomplex quality of each block from block moments.

    The toolbox normalises each block band (z = (g - a)/s + 1 and
    z' = conj((f - a)/t + 1), t = s, or t = 1 where a = 0) and computes
    q = n/(n-1)·[mean(z·z') − mean(z)·mean(z')] · mean_bias · 2/(σ²_z + σ²_z').
    The product is bilinear, so everything follows from the block means and
    the (cross-)covariances of the raw data; no normalised copy is formed.

    Args:
        a, b: (nb, C) block means of GT and fused.
        dg, df: (nb, npix, C) centred blocks of GT and fused.
        n: number of hypercomplex components (power of two >= C).

    Returns:
        (nb,) norms ‖q‖.
    """
    nb, npix, c = dg.shape
    vg = np.einsum("bpc,bpc->bc", dg, dg)  # sums of squared deviations
    vf = np.einsum("bpc,bpc->bc", df, df)
    x = np.matmul(np.transpose(dg, (0, 2, 1)), df)  # (nb, C, C) cross sums
    s = np.sqrt(vg / (npix - 1))  # std2 (N - 1)
    s[s == 0] = np.finfo(np.float64).eps
    t = np.where(a == 0, 1.0, s)
    sign = np.ones(n)
    sign[1:] = -1.0  # conjugate of the fused hypercomplex number
    # Means of the normalised blocks: GT -> 1 (every component, including
    # zero-padded bands); fused -> conj((b - a)/t + 1), padded bands conj(1).
    mf = np.tile(sign, (nb, 1))
    mf[:, :c] = sign[:c] * ((b - a) / t + 1.0)
    mg2 = float(n)
    mf2 = np.sum(mf * mf, axis=1)
    mean_bias = 2.0 * np.sqrt(mg2) * np.sqrt(mf2) / (mg2 + mf2)
    unb = npix / (npix - 1.0)
    var_sum = unb * (np.sum(vg / (s * s), axis=1) + np.sum(vf / (t * t), axis=1)) / npix
    cross = x * sign[None, None, :c] / (npix * s[:, :, None] * t[:, None, :])
    tensor = onion_structure_tensor(n)[:, :c, :c]
    qv = unb * np.einsum("kij,bij->bk", tensor, cross)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = qv * (mean_bias * 2.0 / var_sum)[:, None]
    flat = var_sum == 0
    if np.any(flat):
        q[flat] = 0.0
        q[flat, -1] = mean_bias[flat]
    return np.sqrt(np.sum(q * q, axis=1))


def q2n(
    fused,
    gt,
    block_size: int = Q_BLOCK,
    *,
    normalized: bool = False,
    max_value: float | None = None,
    sensor: str | Sensor | None = None,
) -> float:
    """Q2n: hypercomplex quality index (Q4 / Q8; toolbox `q2n.m`).

    Non-overlapping `block_size` blocks (bottom/right padded by symmetric
    mirroring when needed), both images cast to uint16 DN (round half away
    from zero), bands zero-padded to a power of two, per-block hypercomplex
    UIQI with the toolbox's Cayley–Dickson product; the mean of the block
    norms.

    Args:
        fused: fused image `(H, W, C)`.
        gt: reference image `(H, W, C)`.
        block_size: block side (32).
        normalized: True when the inputs are in [0, 1]; they are then scaled
            to DN by `max_value` (or the sensor's max DN) before quantisation.
        max_value: maximum DN (e.g. 2047).
        sensor: sensor name or `Sensor` (for the max DN and a band check).

    Returns:
        Q2n in [0, 1] (1 is perfect).
    """
    f = _as_image(fused, "fused")
    g = _as_image(gt, "gt")
    _same_shape(f, g, "fused", "gt")
    _check_bands(g, sensor, "gt")
    f, g = _to_dn((f, g), normalized, _resolve_scale(sensor, max_value))
    return _q2n_dn(f, g, int(block_size))


def _q2n_dn(f: np.ndarray, g: np.ndarray, s: int) -> float:
    c = g.shape[2]
    n = 1 << (c - 1).bit_length()  # bands zero-padded to a power of two
    a, dg = _block_centered(_pad_symmetric_to(g, s), s, s, quantize=True)
    b, df = _block_centered(_pad_symmetric_to(f, s), s, s, quantize=True)
    return float(np.mean(_q2n_blocks(a, dg, b, df, n)))


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
def _unit_scale(f, g, normalized, sensor, max_value, fn):
    scale = _resolve_scale(sensor, max_value)
    if normalized:
        return f, g
    if scale is None:
        raise ValueError(
            f"{fn} works on [0, 1] data: pass max_value= or sensor= for DN "
            "inputs, or normalized=True for data already in [0, 1]."
        )
    return f / scale, g / scale


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


# ------------------------------------------------------------ block Q (QNR)
def _block_regions(h: int, w: int, s: int):
    """Regions of blockproc's distinct s x s blocks: (rows, cols, bh, bw)."""
    hf, wf = (h // s) * s, (w // s) * s
    out = []
    for r0, r1, bh in ((0, hf, s), (hf, h, h - hf)):
        for c0, c1, bw in ((0, wf, s), (wf, w, w - wf)):
            if r1 > r0 and c1 > c0:
                out.append((slice(r0, r1), slice(c0, c1), bh, bw))
    return out


def _block_groups(x: np.ndarray, s: int):
    """blockproc's distinct s x s blocks of x (partial blocks at the edges).

    Returns:
        List over groups of equally sized blocks of (means (nb, C),
        centred blocks (nb, npix, C)).
    """
    return [
        _block_centered(x[rs, cs], bh, bw)
        for rs, cs, bh, bw in _block_regions(x.shape[0], x.shape[1], s)
    ]


def _mean_q(per_group) -> np.ndarray:
    total, count = 0.0, 0
    for q in per_group:
        total = total + np.sum(q, axis=0)
        count += q.shape[0]
    return total / count


def _block_q_pairs(groups) -> np.ndarray:
    """(C, C) mean block Q between every band pair (sample covariance)."""

    def one(m, d):
        ddof = max(d.shape[1] - 1, 1)  # 1-pixel blocks: deviations are 0
        cov = np.matmul(np.transpose(d, (0, 2, 1)), d) / ddof
        var = np.diagonal(cov, axis1=1, axis2=2)
        return _uiqi_from_moments(
            m[:, :, None], m[:, None, :], var[:, :, None], var[:, None, :], cov
        )

    return _mean_q(one(m, d) for m, d in groups)


def _block_q_bands(gx, gy) -> np.ndarray:
    """(C,) mean block Q of each band of x against y (one band or C bands)."""

    def one(mx, dx, my, dy):
        ddof = max(dx.shape[1] - 1, 1)
        vx = np.einsum("bpc,bpc->bc", dx, dx) / ddof
        vy = np.einsum("bpc,bpc->bc", dy, dy) / ddof
        if dy.shape[2] == 1:
            cxy = np.matmul(np.transpose(dy, (0, 2, 1)), dx)[:, 0, :] / ddof
        else:
            cxy = np.einsum("bpc,bpc->bc", dx, dy) / ddof
        return _uiqi_from_moments(mx, my, vx, vy, cxy)

    return _mean_q(one(mx, dx, my, dy) for (mx, dx), (my, dy) in zip(gx, gy))


# ----------------------------------------------------- FR helpers (signal)
def _signal():
    from keras_pansharp import signal as sig

    return sig


def _lms(ms_lr: np.ndarray) -> np.ndarray:
    return np.asarray(_signal().interp23tap(ms_lr, ratio=RATIO), dtype=np.float64)


def _check_fr(f: np.ndarray, ms: np.ndarray, pan: np.ndarray | None, ratio: int):
    if ms.shape[2] != f.shape[2]:
        raise ValueError(
            f"fused has {f.shape[2]} bands but ms_lr has {ms.shape[2]}; they must match."
        )
    if f.shape[:2] != (ms.shape[0] * ratio, ms.shape[1] * ratio):
        raise ValueError(
            f"fused is {f.shape[0]}x{f.shape[1]} but ms_lr is {ms.shape[0]}x"
            f"{ms.shape[1]}; expected fused = {ratio} x ms_lr."
        )
    if pan is not None and pan.shape[:2] != f.shape[:2]:
        raise ValueError(
            f"pan is {pan.shape[0]}x{pan.shape[1]} but fused is "
            f"{f.shape[0]}x{f.shape[1]}; they must be equal."
        )


def _fr_inputs(fused, ms_lr, pan=None):
    f = _as_image(fused, "fused")
    ms = _as_image(ms_lr, "ms_lr")
    p = _pan(pan) if pan is not None else None
    _check_fr(f, ms, p, RATIO)
    return f, ms, p


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


def _pan_lp(p: np.ndarray) -> np.ndarray:
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
        return _pan_lp(pn)
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

    Returns:
        dict with `d_lambda`, `d_s`, `qnr`, `d_lambda_k`, `hqnr` (floats).

    Example:

    >>> scores = evaluate_fr(fused, ms_lr, pan, sensor="wv3")  # doctest: +SKIP
    >>> scores["hqnr"]  # doctest: +SKIP
    """
    f, ms, pn = _fr_inputs(fused, ms_lr, pan)
    _check_bands(f, sensor, "fused")
    scale = _resolve_scale(sensor, max_value)
    lm = None if lms is None else _as_image(lms, "lms")
    f, ms, pn = _to_dn((f, ms, pn), normalized, scale)
    if lm is not None:
        (lm,) = _to_dn((lm,), normalized, scale)
    if lm is None:
        lm = _lms(ms)
    else:
        _same_shape(lm, f, "lms", "fused")
    plr = None
    if pan_lr is not None:
        (plr,) = _to_dn((_pan(pan_lr, "pan_lr"),), normalized, scale)
    plp = _pan_lp_or(plr, pn, ms)
    s = int(block_size)
    groups = (_block_groups(f, s), _block_groups(lm, s))  # shared by D_lambda, D_s
    dl = _d_lambda(f, lm, s, 1, groups)
    ds = _d_s(f, lm, pn, plp, s, 1, groups)
    del groups
    dk = _d_lambda_k(f, lm, sensor, s)
    return {
        "d_lambda": dl,
        "d_s": ds,
        "qnr": float((1 - dl) * (1 - ds)),
        "d_lambda_k": dk,
        "hqnr": float((1 - dk) * (1 - ds)),
    }


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
    f, g = _to_dn((f, g), normalized, scale)
    f, g = _cut(f, int(dim_cut)), _cut(g, int(dim_cut))
    return {
        "q2n": _q2n_dn(f, g, int(block_size)),
        "q_avg": q_avg(f, g, block_size),
        "sam": sam(f, g),
        "ergas": ergas(f, g, ratio),
        "scc": scc(f, g),
        "psnr": psnr(f, g, max_value=scale),
        "ssim": ssim(f, g, max_value=scale),
    }
