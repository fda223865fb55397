"""Wald's protocol degradation (toolbox `resize_images`)."""

from __future__ import annotations

import numpy as np

from keras_pansharp.signal.checks import (
    as_float_image,
    as_pan,
    check_pair,
    check_ratio,
)
from keras_pansharp.signal.filters import mtf_filter
from keras_pansharp.signal.kernels import mtf_kernels
from keras_pansharp.signal.resize import imresize_bicubic, imresize_nearest

__all__ = ["wald_degrade"]


def wald_degrade(ms, pan, sensor, ratio: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Degrade a full-resolution MS/PAN pair by `ratio` (Wald's protocol).

    Exactly the reference toolbox's `resize_images` (REFERENCE §5):

    - MS: each band filtered with its MTF-matched kernel (replicate borders),
      then decimated with MATLAB `imresize(..., 1/ratio, 'nearest')`
      (for ratio 4: rows/columns 2, 6, 10, ...).
    - PAN: MATLAB `imresize(pan, 1/ratio)` (bicubic with antialiasing). The
      toolbox does not MTF-filter the PAN here.

    The original MS then serves as ground truth for the degraded pair.

    Args:
        ms: full-resolution MS, (h, w, C), h and w multiples of `ratio`.
        pan: PAN, (ratio*h, ratio*w) or (ratio*h, ratio*w, 1).
        sensor: sensor name (`"WV3"`, `"QB"`, ...), a `Sensor`, `"none"`
            (0.3 gains for every band) or a sequence of per-band MTF gains.
        ratio: resolution ratio (4).

    Returns:
        `(ms_lr, pan_lr)`: float64 (h/ratio, w/ratio, C) and (h, w) (or
        (h, w, 1) when `pan` was given with a band axis).

    Raises:
        ValueError: bad ranks, sizes not multiples of `ratio`, PAN not
            `ratio` x MS, band count different from the sensor's, NaN/inf.

    Example:

    >>> import numpy as np
    >>> ms = np.random.default_rng(0).uniform(0, 2047, (64, 64, 4))
    >>> pan = np.random.default_rng(1).uniform(0, 2047, (256, 256))
    >>> ms_lr, pan_lr = wald_degrade(ms, pan, "QB")
    >>> ms_lr.shape, pan_lr.shape
    ((16, 16, 4), (64, 64))
    """
    ratio = check_ratio(ratio)
    ms = as_float_image(ms, "ms", allow_2d=False)
    pan_arr = np.asarray(pan)
    pan2 = as_pan(pan, "pan")
    check_pair(ms, pan2, ratio)
    h, w = ms.shape[:2]
    if h % ratio or w % ratio:
        raise ValueError(
            f"ms spatial size {(h, w)} must be a multiple of ratio {ratio} "
            "to be degraded."
        )
    kernels = mtf_kernels(sensor, ratio, num_bands=ms.shape[2])
    ms_lr = imresize_nearest(mtf_filter(ms, kernels), 1.0 / ratio)
    pan_lr = imresize_bicubic(pan2, 1.0 / ratio)
    if pan_arr.ndim == 3:
        pan_lr = pan_lr[:, :, None]
    return ms_lr, pan_lr
