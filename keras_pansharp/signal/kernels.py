"""Fixed filter coefficients shared by the NumPy tools and the Keras layers."""

from __future__ import annotations

import numpy as np

# Half of the toolbox's 23-tap polynomial interpolation kernel, centre first
# (REFERENCE §4). The full kernel is this array mirrored, times 2.
_INTERP23TAP_HALF = (
    0.5,
    0.305334091185,
    0.0,
    -0.072698593239,
    0.0,
    0.021809577942,
    0.0,
    -0.005192756653,
    0.0,
    0.000807762146,
    0.0,
    -0.000060081482,
)


def interp23tap_kernel() -> np.ndarray:
    """The 23-tap interpolation kernel of the reference toolbox (float64).

    Returns:
        Array of shape `(23,)`, symmetric, centre tap (index 11) equal to 1.0.
    """
    half = 2.0 * np.asarray(_INTERP23TAP_HALF, dtype=np.float64)
    return np.concatenate([half[:0:-1], half])


# ---------------------------------------------------------------------------
# MTF-matched low-pass kernels (REFERENCE §5, toolbox `genMTF`).
# ---------------------------------------------------------------------------


def _gaussian_fspecial(n: int, sigma: float) -> np.ndarray:
    """MATLAB `fspecial('gaussian', n, sigma)`: unit-sum n x n Gaussian.

    Like MATLAB, values below `eps * max` are set to zero before normalising.
    """
    half = (n - 1) / 2.0
    x = np.arange(n, dtype=np.float64) - half
    arg = -(x[:, None] ** 2 + x[None, :] ** 2) / (2.0 * sigma * sigma)
    h = np.exp(arg)
    h[h < np.finfo(np.float64).eps * h.max()] = 0.0
    total = h.sum()
    if total != 0.0:
        h = h / total
    return h


def _huang_window(window_1d: np.ndarray) -> np.ndarray:
    """Rotationally symmetric 2-D window from a 1-D one (MATLAB `fwind1`).

    Huang's method: the 2-D window at radius rho is the 1-D window linearly
    interpolated at rho, with the 1-D window sampled on [-1, 1]; zero outside
    the unit circle.
    """
    w1 = np.asarray(window_1d, dtype=np.float64).ravel()
    n = w1.size
    t = (np.arange(n, dtype=np.float64) - (n - 1) / 2.0) * (2.0 / (n - 1))
    rho = np.sqrt(t[None, :] ** 2 + t[:, None] ** 2)
    outside = (rho < t[0]) | (rho > t[-1])
    w = np.interp(np.where(outside, 0.0, rho), t, w1)
    w[outside] = 0.0
    return w


def _fsamp2(hd: np.ndarray) -> np.ndarray:
    """MATLAB `fsamp2`: 2-D FIR filter from a centred frequency response."""
    hd = np.rot90(np.fft.fftshift(np.rot90(hd, 2)), 2)
    h = np.fft.fftshift(np.fft.ifft2(hd))
    return np.rot90(h, 2)


def fwind1(hd: np.ndarray, window_1d: np.ndarray) -> np.ndarray:
    """2-D FIR filter by the window method (MATLAB `fwind1(Hd, win)`).

    Args:
        hd: desired frequency response, (n, n), centred (DC in the middle).
        window_1d: 1-D window of length n, turned into a rotationally
            symmetric 2-D window with Huang's method.

    Returns:
        The real part of the designed (n, n) filter, float64.
    """
    hd = np.asarray(hd, dtype=np.float64)
    w = _huang_window(window_1d)
    if w.shape != hd.shape:
        raise ValueError(
            f"fwind1: window of length {w.shape[0]} does not match the "
            f"frequency response of shape {hd.shape}."
        )
    return np.real(_fsamp2(hd) * w)


def mtf_kernel(
    gnyq: float, ratio: int = 4, n: int = 41, beta: float = 0.5, *, sigma_n=None
) -> np.ndarray:
    """One MTF-matched low-pass kernel (toolbox `genMTF`, one band).

    Gaussian with `sigma = sqrt(((n-1) / ratio / 2)**2 / (-2 ln gnyq))`
    (unit sum, then divided by its maximum), designed as an FIR filter with
    `fwind1` and a rotationally symmetric Kaiser window (`beta`). The result is
    not renormalised (its sum is about 0.998).

    Args:
        gnyq: MTF gain at the Nyquist frequency, in (0, 1).
        ratio: resolution ratio (4).
        n: kernel size (odd; 41 in the toolbox).
        beta: Kaiser window parameter (MATLAB `kaiser` default 0.5).
        sigma_n: the `N` in the sigma formula; default `n - 1` (`genMTF`).
            The toolbox's `LPfilterGauss` uses `n`.

    Returns:
        Array (n, n), float64.
    """
    gnyq = float(gnyq)
    if not 0.0 < gnyq < 1.0:
        raise ValueError(f"MTF gain at Nyquist must be in (0, 1), got {gnyq}.")
    if int(n) != n or n < 3 or n % 2 == 0:
        raise ValueError(f"Kernel size n must be an odd integer >= 3, got {n}.")
    if ratio <= 0:
        raise ValueError(f"ratio must be positive, got {ratio}.")
    n = int(n)
    big_n = (n - 1) if sigma_n is None else sigma_n
    fcut = 1.0 / ratio
    sigma = np.sqrt((big_n * (fcut / 2.0)) ** 2 / (-2.0 * np.log(gnyq)))
    h = _gaussian_fspecial(n, sigma)
    hd = h / h.max()
    return fwind1(hd, np.kaiser(n, beta))


def resolve_gains(sensor_or_gains, num_bands: int | None = None) -> np.ndarray:
    """MS MTF gains of a sensor name / `Sensor` / sequence of gains.

    `"none"` (the toolbox's name for an unknown sensor) and `"generic"` give
    0.3 for each of `num_bands` bands.

    Raises:
        ValueError: if the band count disagrees with `num_bands`, or `"none"`
            is given without `num_bands`.
    """
    from keras_pansharp.sensors import Sensor, get_sensor

    if isinstance(sensor_or_gains, str) and sensor_or_gains.strip().lower() in (
        "none",
        "generic",
    ):
        if num_bands is None:
            raise ValueError(
                f"sensor {sensor_or_gains!r} (default 0.3 gains) needs the number "
                "of bands."
            )
        return np.full(int(num_bands), 0.3)
    if isinstance(sensor_or_gains, (str, Sensor)):
        sensor = get_sensor(sensor_or_gains)
        gains = np.asarray(sensor.ms_gnyq, dtype=np.float64)
        name = sensor.name
    else:
        gains = np.atleast_1d(np.asarray(sensor_or_gains, dtype=np.float64))
        name = "gains"
        if gains.ndim != 1 or gains.size == 0:
            raise ValueError(
                "MTF gains must be a sensor name, a Sensor or a 1-D sequence of "
                f"gains, got an array of shape {gains.shape}."
            )
    if num_bands is not None and gains.size != num_bands:
        raise ValueError(
            f"{name} has {gains.size} MTF gains but the image has {num_bands} "
            "bands (for 4-band data from an 8-band sensor use e.g. 'WV3_RGBN')."
        )
    return gains


def mtf_kernels(
    sensor_or_gains,
    ratio: int = 4,
    n: int = 41,
    *,
    num_bands: int | None = None,
    pan: bool = False,
) -> np.ndarray:
    """The sensor's MTF-matched low-pass kernels (toolbox `genMTF`).

    Args:
        sensor_or_gains: sensor name (`"WV3"`, `"qb"`, ...), a
            `keras_pansharp.sensors.Sensor`, `"none"` (0.3 for every band, the
            toolbox default; needs `num_bands`) or a sequence of MTF gains at
            Nyquist.
        ratio: resolution ratio (4).
        n: kernel size (41).
        num_bands: expected number of bands (checked against the sensor).
        pan: return the PAN kernel instead (the sensor's `pan_gnyq`; 0.15 for
            `"none"` or plain gains).

    Returns:
        Array (n, n, C) float64 (C = 1 when `pan=True`).

    Example:

    >>> k = mtf_kernels("WV3")
    >>> k.shape
    (41, 41, 8)
    """
    if pan:
        from keras_pansharp.sensors import Sensor, get_sensor

        if isinstance(sensor_or_gains, (str, Sensor)) and not (
            isinstance(sensor_or_gains, str)
            and sensor_or_gains.strip().lower() in ("none", "generic")
        ):
            g = get_sensor(sensor_or_gains).pan_gnyq
        else:
            g = 0.15
        return mtf_kernel(g, ratio, n)[:, :, None]
    gains = resolve_gains(sensor_or_gains, num_bands)
    return np.stack([mtf_kernel(g, ratio, n) for g in gains], axis=-1)
