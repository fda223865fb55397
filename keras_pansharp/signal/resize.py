"""MATLAB-compatible `imresize` (bicubic with antialiasing, nearest)."""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse

from keras_pansharp.signal.checks import as_float_image

__all__ = ["imresize_bicubic", "imresize_nearest"]


def cubic_kernel(x: np.ndarray) -> np.ndarray:
    """MATLAB's bicubic kernel (Keys, a = -0.5) at offsets `x` (in pixels)."""
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    return (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1) + (
        -0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0
    ) * ((ax > 1) & (ax <= 2))


def _box(x: np.ndarray) -> np.ndarray:
    return ((x >= -0.5) & (x < 0.5)).astype(np.float64)


def _weight_matrix(
    in_len: int, out_len: int, scale: float, kernel, width: float, antialias: bool
) -> scipy.sparse.csr_matrix:
    """Sparse (out_len, in_len) matrix of MATLAB `imresize` `contributions`."""
    if scale < 1 and antialias:

        def h(x):
            return scale * kernel(scale * x)

        width = width / scale
    else:
        h = kernel
    u = np.arange(1, out_len + 1, dtype=np.float64) / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2.0)
    p = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(p)[None, :]  # 1-based
    w = h(u[:, None] - idx)
    w = w / w.sum(axis=1, keepdims=True)
    # Symmetric (mirror) boundary, as MATLAB: aux = [1:n, n:-1:1].
    aux = np.concatenate([np.arange(in_len), np.arange(in_len)[::-1]])
    cols = aux[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
    rows = np.repeat(np.arange(out_len), p)
    m = scipy.sparse.coo_matrix(
        (w.ravel(), (rows, cols.ravel())), shape=(out_len, in_len)
    )
    return m.tocsr()  # duplicate (mirrored) indices are summed


def _out_len(n: int, scale: float) -> int:
    return int(math.ceil(n * scale - 1e-12))


def _resize(image, scale, kernel, width, antialias, name) -> np.ndarray:
    x = as_float_image(image, name)
    scale = float(scale)
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"scale must be a positive number, got {scale}.")
    squeeze = x.ndim == 2
    if squeeze:
        x = x[:, :, None]
    h, w, c = x.shape
    oh, ow = _out_len(h, scale), _out_len(w, scale)
    a = _weight_matrix(h, oh, scale, kernel, width, antialias)
    b = _weight_matrix(w, ow, scale, kernel, width, antialias)
    # MATLAB resizes dimension 1 first when both scales are equal.
    y = (a @ x.reshape(h, w * c)).reshape(oh, w, c)
    y = np.moveaxis(y, 1, 0).reshape(w, oh * c)
    y = np.moveaxis((b @ y).reshape(ow, oh, c), 0, 1)
    y = np.ascontiguousarray(y)
    return y[:, :, 0] if squeeze else y


def imresize_bicubic(image, scale: float = 0.25, antialias: bool = True) -> np.ndarray:
    """MATLAB `imresize(image, scale)` (bicubic, a = -0.5, antialiasing).

    When shrinking, the cubic kernel is stretched by `1/scale` and the weights
    renormalised; borders are mirrored (symmetric). Output size is
    `ceil(scale * size)`. `skimage.transform.resize` is not identical.

    Args:
        image: (H, W) or (H, W, C) array; bands are resized independently.
        scale: resize factor (0.25 to shrink by 4).
        antialias: MATLAB's `'Antialiasing'` option (default on).

    Returns:
        float64 array (ceil(scale*H), ceil(scale*W)[, C]).

    Example:

    >>> import numpy as np
    >>> imresize_bicubic(np.ones((16, 16))).shape
    (4, 4)
    """
    return _resize(image, scale, cubic_kernel, 4.0, antialias, "image")


def imresize_nearest(image, scale: float = 0.25) -> np.ndarray:
    """MATLAB `imresize(image, scale, 'nearest')`.

    For `scale = 1/4` this keeps every 4th pixel starting at 0-based index 2,
    i.e. `image[2::4, 2::4]`.

    Args:
        image: (H, W) or (H, W, C) array.
        scale: resize factor.

    Returns:
        float64 array (ceil(scale*H), ceil(scale*W)[, C]).
    """
    return _resize(image, scale, _box, 1.0, False, "image")
