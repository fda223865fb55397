"""Interpolation and MTF filtering, toolbox-exact, NumPy/SciPy float64."""

from __future__ import annotations

import numpy as np
import scipy.fft
from scipy import ndimage

from keras_pansharp.signal._checks import as_float_image, check_ratio
from keras_pansharp.signal.kernels import interp23tap_kernel, mtf_kernels

__all__ = ["interp23tap", "mtf_filter"]


def _upsample2(x: np.ndarray, axis: int, odd: bool) -> np.ndarray:
    """One x2 stage of `interp23tap` along `axis` (circular, polyphase).

    Equivalent to zero-stuffing `x` to twice its length (samples at odd
    positions when `odd`, else at even ones) and correlating with the 23-tap
    kernel with circular boundaries. The kernel's even-offset taps are 0 except
    the centre (1.0), so the input samples pass unchanged and the new samples
    are a 12-tap circular correlation of the input.
    """
    taps = interp23tap_kernel()[0::2]  # the 12 odd-offset taps
    # odd: new[i] = sum_j taps[j] x[i + j - 6]; even: x[i + j - 5]
    new = ndimage.correlate1d(x, taps, axis=axis, mode="wrap", origin=0 if odd else -1)
    shape = list(x.shape)
    shape[axis] *= 2
    out = np.empty(shape, dtype=np.float64)
    keep = [slice(None)] * x.ndim
    fill = [slice(None)] * x.ndim
    keep[axis] = slice(1 if odd else 0, None, 2)
    fill[axis] = slice(0 if odd else 1, None, 2)
    out[tuple(keep)] = x
    out[tuple(fill)] = new
    return out


def interp23tap(image, ratio: int = 4) -> np.ndarray:
    """Upsample by `ratio` with the toolbox's 23-tap interpolator.

    Exactly the reference toolbox's `interp23tap` (REFERENCE §4): log2(ratio)
    x2 stages; the first places the samples at odd (0-based) rows/columns,
    later stages at even ones; each stage filters columns then rows with the
    23-tap kernel, circular boundaries. For ratio 4, `up[2::4, 2::4] == image`.

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
    for s in range(stages):
        odd = s == 0
        x = _upsample2(x, 0, odd)
        x = _upsample2(x, 1, odd)
    return x


def _fft_correlate_nearest(band: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """`imfilter(band, kernel, 'replicate')` (correlation, same size) via FFT."""
    kh, kw = kernel.shape
    ph, pw = kh // 2, kw // 2
    padded = np.pad(band, ((ph, kh - 1 - ph), (pw, kw - 1 - pw)), mode="edge")
    # Circular correlation of size >= padded is linear on the valid part.
    n0 = scipy.fft.next_fast_len(padded.shape[0], real=True)
    n1 = scipy.fft.next_fast_len(padded.shape[1], real=True)
    fx = scipy.fft.rfft2(padded, s=(n0, n1), workers=-1)
    fk = scipy.fft.rfft2(kernel, s=(n0, n1), workers=-1)
    fx *= np.conj(fk)
    out = scipy.fft.irfft2(fx, s=(n0, n1), workers=-1)
    return out[: band.shape[0], : band.shape[1]]


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
        kb = k[:, :, b]
        if x.shape[0] * x.shape[1] * kb.size <= 2_000_000:
            out[:, :, b] = ndimage.correlate(x[:, :, b], kb, mode="nearest")
        else:
            out[:, :, b] = _fft_correlate_nearest(x[:, :, b], kb)
    return out[:, :, 0] if squeeze else out
