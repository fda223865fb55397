"""Interpolation and MTF filtering, toolbox-exact, NumPy/SciPy float64."""

from __future__ import annotations

import functools

import numpy as np
import scipy.fft
import scipy.sparse
from scipy import ndimage

from keras_pansharp.signal.checks import as_float_image, check_ratio
from keras_pansharp.signal.kernels import interp23tap_kernel, mtf_kernels

__all__ = ["correlate_nearest", "interp23tap", "mtf_filter"]


@functools.lru_cache(maxsize=32)
def _upsample2_operator(n: int, odd: bool) -> scipy.sparse.csr_matrix:
    """Sparse (2n, n) matrix of one x2 `interp23tap` stage along one axis.

    Equivalent to zero-stuffing a length-n signal to length 2n (samples at odd
    0-based positions when `odd`, else at even ones) and correlating with the
    23-tap kernel with circular boundaries. The kernel's even-offset taps are 0
    except the centre (1.0), so input samples pass unchanged and each new
    sample is a 12-tap circular correlation of the input.
    """
    taps = interp23tap_kernel()[0::2]  # the 12 odd-offset taps
    i = np.arange(n)
    keep_rows = 2 * i + (1 if odd else 0)
    new_rows = 2 * i + (0 if odd else 1)
    # odd: new[i] = sum_j taps[j] x[i + j - 6]; even: x[i + j - 5]
    offset = -6 if odd else -5
    rows = np.concatenate([keep_rows, np.repeat(new_rows, 12)])
    cols = np.concatenate(
        [i, np.mod(i[:, None] + np.arange(12)[None, :] + offset, n).ravel()]
    )
    vals = np.concatenate([np.ones(n), np.tile(taps, n)])
    return scipy.sparse.csr_matrix((vals, (rows, cols)), shape=(2 * n, n))


def _upsample_axis0(x: np.ndarray, stages: int) -> np.ndarray:
    """Apply all x2 stages along axis 0 of a (n, ...) array."""
    shape = x.shape
    y = x.reshape(shape[0], -1)
    for s in range(stages):
        y = _upsample2_operator(y.shape[0], s == 0) @ y
    return y.reshape((y.shape[0],) + shape[1:])


def interp23tap(image, ratio: int = 4) -> np.ndarray:
    """Upsample by `ratio` with the toolbox's 23-tap interpolator.

    The reference toolbox's `interp23tap` (REFERENCE §4): log2(ratio) x2
    stages; the first places the samples at odd (0-based) rows/columns, later
    stages at even ones; each stage filters with the 23-tap kernel along both
    axes, circular boundaries. For ratio 4, `up[2::4, 2::4] == image`.

    Args:
        image: (h, w) or (h, w, C) array (any real dtype; computed in float64).
        ratio: a power of two (2 or 4 in practice).

    Returns:
        float64 array (ratio*h, ratio*w[, C]).

    Example:

    >>> import numpy as np
    >>> up = interp23tap(np.ones((8, 8, 4)))
    >>> up.shape, bool(np.allclose(up, 1.0))
    ((32, 32, 4), True)
    """
    x = as_float_image(image, "image")
    ratio = check_ratio(ratio)
    stages = int(round(np.log2(ratio)))
    if 2**stages != ratio or stages < 1:
        raise ValueError(f"interp23tap: ratio must be a power of 2 >= 2, got {ratio}.")
    squeeze = x.ndim == 2
    if squeeze:
        x = x[:, :, None]
    # The toolbox filters columns then rows at each stage; both are linear and
    # separable, so doing all column stages, then all row stages, gives the
    # same result (to rounding) with fewer copies. Sparse operators keep
    # memory access contiguous.
    y = _upsample_axis0(np.ascontiguousarray(x.transpose(1, 0, 2)), stages)
    y = _upsample_axis0(np.ascontiguousarray(y.transpose(1, 0, 2)), stages)
    return y[:, :, 0] if squeeze else y


def _symmetric_spectrum(kernel: np.ndarray, n0: int, n1: int) -> np.ndarray:
    """Real rfft2 spectrum (n0, n1//2+1) of a flip-symmetric odd kernel whose
    centre sits at index (0, 0) (circularly), via cosine sums (cheap BLAS)."""
    c0, c1 = kernel.shape[0] // 2, kernel.shape[1] // 2
    quarter = kernel[c0:, c1:].copy()
    quarter[1:, :] *= 2.0
    quarter[:, 1:] *= 2.0
    cos0 = np.cos(2.0 * np.pi * np.outer(np.arange(n0), np.arange(c0 + 1)) / n0)
    cos1 = np.cos(
        2.0 * np.pi * np.outer(np.arange(n1 // 2 + 1), np.arange(c1 + 1)) / n1
    )
    return cos0 @ quarter @ cos1.T


def _is_flip_symmetric(kernel: np.ndarray) -> bool:
    return (
        kernel.shape[0] % 2 == 1
        and kernel.shape[1] % 2 == 1
        and np.array_equal(kernel, kernel[::-1, :])
        and np.array_equal(kernel, kernel[:, ::-1])
    )


def _fft_correlate_nearest(band: np.ndarray, kernels: np.ndarray) -> np.ndarray:
    """`imfilter(band, k, 'replicate')` for each k in `kernels`, via FFT.

    Args:
        band: (H, W).
        kernels: (kh, kw) or (kh, kw, K); the padded band's spectrum is
            computed once and reused for every kernel.

    Returns:
        (H, W) for a 2-D kernel, else (H, W, K).
    """
    single = kernels.ndim == 2
    if single:
        kernels = kernels[:, :, None]
    kh, kw, nk = kernels.shape
    ph, pw = kh // 2, kw // 2
    padded = np.pad(band, ((ph, kh - 1 - ph), (pw, kw - 1 - pw)), mode="edge")
    # Circular correlation of size >= padded is linear on the part we keep.
    n0 = scipy.fft.next_fast_len(padded.shape[0], real=True)
    n1 = scipy.fft.next_fast_len(padded.shape[1], real=True)
    fx = scipy.fft.rfft2(padded, s=(n0, n1), workers=-1)
    h, w = band.shape
    out = np.empty((h, w, nk))
    for i in range(nk):
        kernel = kernels[:, :, i]
        if _is_flip_symmetric(kernel):
            # Centred symmetric kernel: real spectrum, output offset (ph, pw).
            prod = fx * _symmetric_spectrum(kernel, n0, n1)
            full = scipy.fft.irfft2(prod, s=(n0, n1), workers=-1)
            out[:, :, i] = full[ph : ph + h, pw : pw + w]
        else:
            prod = fx * np.conj(scipy.fft.rfft2(kernel, s=(n0, n1), workers=-1))
            out[:, :, i] = scipy.fft.irfft2(prod, s=(n0, n1), workers=-1)[:h, :w]
    return out[:, :, 0] if single else out


def correlate_nearest(band, kernels: np.ndarray) -> np.ndarray:
    """Filter one band with several kernels (replicate borders, correlation).

    Used e.g. to low-pass the PAN with each MS band's MTF kernel; the band's
    FFT is computed once.

    Args:
        band: (H, W) (or (H, W, 1)) array.
        kernels: (k, k, K) kernels (or (k, k)).

    Returns:
        (H, W, K) float64 ((H, W) for a 2-D kernel).
    """
    from keras_pansharp.signal.checks import as_pan

    x = as_pan(band, "band")
    k = np.asarray(kernels, dtype=np.float64)
    if k.ndim not in (2, 3) or not np.isfinite(k).all():
        raise ValueError(
            f"kernels must be finite (k, k) or (k, k, K) arrays, got {k.shape}."
        )
    if x.size * k.shape[0] * k.shape[1] <= 2_000_000:
        if k.ndim == 2:
            return ndimage.correlate(x, k, mode="nearest")
        return np.stack(
            [
                ndimage.correlate(x, k[:, :, i], mode="nearest")
                for i in range(k.shape[2])
            ],
            axis=-1,
        )
    return _fft_correlate_nearest(x, k)


def mtf_filter(image, sensor_or_kernels, ratio: int = 4) -> np.ndarray:
    """Filter each band with its MTF-matched kernel, replicate borders.

    Same as the toolbox's `imfilter(band, h, 'replicate')` per band
    (correlation, output the size of the input), computed with FFTs.

    Args:
        image: (H, W) or (H, W, C) array.
        sensor_or_kernels: a sensor name / `Sensor` / `"none"` / gains (kernels
            are built with `mtf_kernels(..., num_bands=C)`), or kernels
            (k, k, C) (or (k, k) for all bands).
        ratio: resolution ratio used to build kernels from a sensor.

    Returns:
        float64 array of the input's shape.

    Raises:
        ValueError: if the kernels' band count does not match the image.
    """
    x = as_float_image(image, "image")
    squeeze = x.ndim == 2
    if squeeze:
        x = x[:, :, None]
    c = x.shape[2]
    if isinstance(sensor_or_kernels, np.ndarray) and sensor_or_kernels.ndim >= 2:
        k = np.asarray(sensor_or_kernels, dtype=np.float64)
        if k.ndim == 2:
            k = np.repeat(k[:, :, None], c, axis=2)
        if k.ndim != 3 or k.shape[2] != c:
            raise ValueError(
                f"kernels of shape {k.shape} do not match an image with {c} band(s)."
            )
        if not np.isfinite(k).all():
            raise ValueError("kernels contain NaN or infinite values.")
    else:
        k = mtf_kernels(sensor_or_kernels, ratio, num_bands=c)
    out = np.empty_like(x)
    for b in range(c):
        out[:, :, b] = correlate_nearest(x[:, :, b], k[:, :, b])
    return out[:, :, 0] if squeeze else out
