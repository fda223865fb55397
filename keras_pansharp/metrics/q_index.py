"""The Q-index family, toolbox-exact (NumPy float64): UIQI, Q_avg and Q2n.

- `q_avg`: Wang–Bovik UIQI on a sliding window (toolbox `Q.m` / `img_qi`),
  window sums by cumulative sums.
- `q2n`: the hypercomplex Q4 / Q8 index (toolbox `q2n.m`) on distinct blocks
  of uint16 DN, with `quantize_uint16` (MATLAB `uint16`) and
  `onion_structure_tensor` (the toolbox's Cayley–Dickson product written as a
  bilinear tensor, also used by the Keras `Q2n` and the no-reference loss).
- Block Q: UIQI over blockproc's distinct blocks, the Q of D_λ and D_s
  (`keras_pansharp.metrics.full_resolution`).

Everything is vectorised: sliding windows use cumulative sums, blocks use
reshapes and batched matrix products; there is no Python loop over pixels or
blocks. Input conventions: see `keras_pansharp.metrics._inputs`; of these
metrics only Q2n depends on the DN scale.

Deliberate deviation from the toolbox (it returns NaN in this case):

- block Q of `d_lambda` / `d_s` (the toolbox's `cov`-based `uqi`, NaN on flat
  blocks) uses the same rule as `q_avg`: where the two variances sum to 0,
  Q = 2·μx·μy / (μx² + μy²), and Q = 1 when both means are 0 as well.
"""

from __future__ import annotations

import functools

import numpy as np

from keras_pansharp.metrics._inputs import (
    Q_BLOCK,
    _as_image,
    _check_bands,
    _resolve_scale,
    _same_shape,
    _to_dn,
)
from keras_pansharp.sensors import Sensor

__all__ = ["q_avg", "q2n", "onion_structure_tensor", "quantize_uint16"]


# -------------------------------------------------------- UIQI (Wang & Bovik)
def uiqi_from_moments(mx, my, vx, vy, cxy):
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
    return float(np.mean(np.mean(_q_map(f, g, k), axis=(0, 1))))


def _q_map(f: np.ndarray, g: np.ndarray, k: int) -> np.ndarray:
    """UIQI of every k x k window (valid region): `(H-k+1, W-k+1, C)`."""
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
    return uiqi_from_moments(mg, mf, vg, vf, cgf)


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


def blocks(x: np.ndarray, bh: int, bw: int) -> np.ndarray:
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
    xb = blocks(x, bh, bw)
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
    return float(np.mean(_q2n_block_norms(f, g, s)))


def _q2n_block_norms(f: np.ndarray, g: np.ndarray, s: int) -> np.ndarray:
    """Per-block Q2n norms (row-major blocks) of DN images, padded as `q2n`."""
    c = g.shape[2]
    n = 1 << (c - 1).bit_length()  # bands zero-padded to a power of two
    a, dg = _block_centered(_pad_symmetric_to(g, s), s, s, quantize=True)
    b, df = _block_centered(_pad_symmetric_to(f, s), s, s, quantize=True)
    return _q2n_blocks(a, dg, b, df, n)


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
    total, count = _sum_q(per_group)
    return total / count


def _sum_q(per_group) -> tuple[np.ndarray, int]:
    """Sum of the per-block values over the groups, and the block count."""
    total, count = 0.0, 0
    for q in per_group:
        total = total + np.sum(q, axis=0)
        count += q.shape[0]
    return total, count


def _block_q_pairs(groups) -> np.ndarray:
    """(C, C) mean block Q between every band pair (sample covariance)."""
    return _mean_q(_block_q_pairs_each(groups))


def _block_q_pairs_each(groups):
    """Per group, the (nb, C, C) block Q between every band pair."""

    def one(m, d):
        ddof = max(d.shape[1] - 1, 1)  # 1-pixel blocks: deviations are 0
        cov = np.matmul(np.transpose(d, (0, 2, 1)), d) / ddof
        var = np.diagonal(cov, axis1=1, axis2=2)
        return uiqi_from_moments(
            m[:, :, None], m[:, None, :], var[:, :, None], var[:, None, :], cov
        )

    return (one(m, d) for m, d in groups)


def _block_q_bands(gx, gy) -> np.ndarray:
    """(C,) mean block Q of each band of x against y (one band or C bands)."""
    return _mean_q(_block_q_bands_each(gx, gy))


def _block_q_bands_each(gx, gy):
    """Per group, the (nb, C) block Q of each band of x against y."""

    def one(mx, dx, my, dy):
        ddof = max(dx.shape[1] - 1, 1)
        vx = np.einsum("bpc,bpc->bc", dx, dx) / ddof
        vy = np.einsum("bpc,bpc->bc", dy, dy) / ddof
        if dy.shape[2] == 1:
            cxy = np.matmul(np.transpose(dy, (0, 2, 1)), dx)[:, 0, :] / ddof
        else:
            cxy = np.einsum("bpc,bpc->bc", dx, dy) / ddof
        return uiqi_from_moments(mx, my, vx, vy, cxy)

    return (one(mx, dx, my, dy) for (mx, dx), (my, dy) in zip(gx, gy))
