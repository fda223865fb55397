"""Differentiable block Q2n (hypercomplex UIQI) in `keras.ops`.

The block computation of the toolbox's `q2n` (REFERENCE section 6) on
float tensors, without the uint16 quantisation and the symmetric padding that
the toolbox applies first. `keras_pansharp.metrics.Q2n` quantises and pads,
then calls `q2n_blocks`; the no-reference loss
(`keras_pansharp.losses.NoReferenceLoss`) calls it on float data so that its
spectral term has gradients.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

__all__ = ["q2n_blocks", "image_blocks"]


def image_blocks(x, block_size: int):
    """Split `(B, H, W, C)` into non-overlapping `s x s` blocks.

    Args:
        x: tensor with static H, W (multiples of `block_size`) and C.
        block_size: block side `s`.

    Returns:
        `(B, (H / s) * (W / s), s * s, C)`, blocks in row-major order.
    """
    h, w, c = x.shape[1:]
    s = int(block_size)
    x = ops.reshape(x, (-1, h // s, s, w // s, s, c))
    x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
    return ops.reshape(x, (-1, (h // s) * (w // s), s * s, c))


def q2n_blocks(y_true, y_pred, block_size: int):
    """Per-image mean over non-overlapping blocks of the Q2n block index.

    Args:
        y_true: `(B, H, W, C)` reference, H and W static multiples of
            `block_size`.
        y_pred: `(B, H, W, C)` estimate.
        block_size: block side `s` in pixels (>= 2).

    Returns:
        `(B,)` tensor: the mean over the `(H/s) * (W/s)` blocks of the norm of
        the hypercomplex quality index (1 = identical).

    Notes:
        Bands are zero-padded to a power of two. A flat reference block band
        uses a standard-deviation floor of 1e-8 (the toolbox uses 2.2e-16;
        its normalised reference is exactly 1 either way).
    """
    from keras_pansharp.metrics.q_index import onion_structure_tensor

    h, w, c = y_true.shape[1:]
    if h is None or w is None or c is None:
        raise ValueError(
            f"q2n_blocks needs static H, W, C; got a tensor of shape "
            f"{tuple(y_true.shape)}."
        )
    s = int(block_size)
    if s < 2 or h % s or w % s:
        raise ValueError(
            f"q2n_blocks: the image ({h}x{w}) must be a multiple of the block "
            f"size {s} (>= 2)."
        )
    dtype = y_pred.dtype
    g = ops.cast(y_true, dtype)
    f = y_pred
    n = 1 << (c - 1).bit_length()
    if n > c:
        zpad = ((0, 0), (0, 0), (0, 0), (0, n - c))
        g = ops.pad(g, zpad)
        f = ops.pad(f, zpad)
    npix = s * s
    g, f = image_blocks(g, s), image_blocks(f, s)
    a = ops.mean(g, axis=2, keepdims=True)
    dg = g - a
    sd = ops.sqrt(ops.sum(dg * dg, axis=2, keepdims=True) / (npix - 1))
    sd = ops.where(sd > 0, sd, ops.full_like(sd, 1e-8))
    zg = dg / sd
    zf = ops.where(a == 0, f - a + 1.0, (f - a) / sd + 1.0)
    f0 = zf[:, :, :1, :]
    mf = f0 + ops.mean(zf - f0, axis=2, keepdims=True)
    np_dtype = keras.backend.standardize_dtype(dtype)
    sign = np.ones((n,), dtype=np_dtype)
    sign[1:] = -1.0
    zf = (zf - mf) * sign
    mf = (mf * sign)[:, :, 0, :]
    mg2 = float(n)  # |mean z|^2: the normalised reference has mean 1 per band
    mf2 = ops.sum(mf * mf, axis=-1)
    mean_bias = 2.0 * math.sqrt(mg2) * ops.sqrt(mf2) / (mg2 + mf2)
    unb = npix / (npix - 1.0)
    var_sum = unb * (
        ops.sum(ops.mean(zg * zg, axis=2), axis=-1)
        + ops.sum(ops.mean(zf * zf, axis=2), axis=-1)
    )
    cross = ops.einsum("bkpi,bkpj->bkij", zg, zf) / npix
    t = onion_structure_tensor(n).astype(np_dtype)
    qv = unb * ops.einsum("kij,bnij->bnk", t, cross)
    flat = var_sum == 0
    safe = ops.where(flat, ops.ones_like(var_sum), var_sum)
    q = qv * ops.expand_dims(mean_bias * 2.0 / safe, -1)
    last = np.zeros((n,), dtype=np_dtype)
    last[-1] = 1.0
    q_flat = ops.expand_dims(mean_bias, -1) * last
    q = ops.where(ops.expand_dims(flat, -1), q_flat, q)
    # sqrt with a tiny floor: its gradient stays finite for a zero index.
    return ops.mean(ops.sqrt(ops.sum(q * q, axis=-1) + 1e-12), axis=-1)
