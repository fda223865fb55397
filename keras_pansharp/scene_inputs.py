"""Checks of one DN scene given to a model transform (calibration, adaptation).

`calibrate_detail_gain` and `adapt` take a model and one scene in digital
numbers (DN) and refuse, with the same errors, what they cannot use: a
non-Keras model, NaN/inf, PAN not 4x the MS, a band count other than the
model's and the sensor's, and data whose range contradicts the scale
(negative values, values above the max DN, or data already normalised given
with a DN sensor). The data are never rescaled or altered.

A Wald-degraded pair (`keras_pansharp.wald_degrade`, the reduced-resolution
copy of a scene) is accepted as it is: its PAN comes from MATLAB's bicubic
`imresize` with antialiasing, whose negative taps can overshoot the PAN's
range near sharp edges (e.g. an IKONOS PAN of max 2047 degraded to 2122).
The PAN may therefore exceed `[0, max DN]` by what that kernel can produce
at most (`PAN_RANGE`: -0.187 to 1.187 x max DN, from the sums of its
negative and positive taps); the MS (MTF-filtered, non-negative kernels)
and anything beyond that bound keep the errors.
"""

from __future__ import annotations

import keras
import numpy as np

from keras_pansharp.sensors import Sensor, get_sensor
from keras_pansharp.signal.checks import as_float_image, as_pan, check_pair
from keras_pansharp.signal.resize import cubic_kernel

__all__ = ["PAN_RANGE", "check_scale", "scene_inputs"]


def _pan_range() -> tuple[float, float]:
    """`(low, high)` in units of max DN that `wald_degrade`'s PAN can reach
    from a PAN in `[0, 1]`: the separable 1/4 bicubic antialiased kernel
    (taps `cubic(d / 4) / 4` at d = 7.5 ... -7.5, renormalised) applied to
    the worst pattern of 0 and 1 (1 under its positive taps, 0 under its
    negative ones, or the opposite)."""
    taps = cubic_kernel(np.arange(7.5, -8.0, -1.0) / 4.0)
    taps = taps / taps.sum()
    pos, neg = taps[taps > 0].sum(), -taps[taps < 0].sum()
    return float(-2.0 * pos * neg), float(pos * pos + neg * neg)


#: The range a Wald-degraded PAN can reach, in units of the max DN.
PAN_RANGE = _pan_range()


def check_scale(
    ms: np.ndarray, pan: np.ndarray, max_value: float, name: str, caller="adapt"
) -> None:
    """Refuse data whose range contradicts `max_value` (never rescale).

    Args:
        ms: `(h, w, C)` MS in DN.
        pan: `(4h, 4w)` PAN in DN.
        max_value: the max DN the data are normalised by.
        name: the sensor's name (for the message).
        caller: prefix of the error messages.

    Raises:
        ValueError: negative MS values or MS values above `max_value`, PAN
            values outside `PAN_RANGE` x `max_value` (what a Wald-degraded
            PAN can reach), or data at most 1 with a `max_value` above 1
            (already normalised).
    """
    ms_lo, ms_hi = float(ms.min()), float(ms.max())
    pan_lo, pan_hi = float(pan.min()), float(pan.max())
    low, high = PAN_RANGE
    # The MS may dip below 0 by the rounding of the MTF kernels' taps (~1e-9).
    ms_neg = ms_lo < -1e-6 * max_value
    if ms_neg or pan_lo < low * max_value:
        lo = ms_lo if ms_neg else pan_lo
        raise ValueError(
            f"{caller}: {'ms' if ms_neg else 'pan'} contains negative values "
            f"(min {lo:g}); expected digital numbers (DN) >= 0 (a Wald-degraded "
            f"PAN may undershoot to {low * max_value:.6g})."
        )
    if ms_hi > max_value * 1.0001 or pan_hi > high * max_value:
        what, hi = ("ms", ms_hi) if ms_hi > max_value * 1.0001 else ("pan", pan_hi)
        raise ValueError(
            f"{caller}: {what} values up to {hi:g} exceed the max DN {max_value:g} "
            f"of sensor {name} (a Wald-degraded PAN may overshoot to "
            f"{high * max_value:.6g}); wrong sensor, or pass max_value= for this "
            "data."
        )
    hi = max(ms_hi, pan_hi)
    if max_value > 1.0 and hi <= 1.0:
        raise ValueError(
            f"{caller}: ms/pan look normalised (max {hi:g} <= 1) but sensor {name} "
            f"has max DN {max_value:g}; pass DN, or max_value=1.0 for data "
            "already in [0, 1]."
        )


def scene_inputs(
    model, ms, pan, sensor: str | Sensor, max_value: float | None, caller: str
) -> tuple[Sensor, np.ndarray, np.ndarray, float]:
    """Checked `(sensor, ms, pan, scale)` of one DN scene for `model`.

    Args:
        model: the Keras model the scene is for.
        ms: `(h, w, C)` MS in DN.
        pan: `(4h, 4w)` or `(4h, 4w, 1)` PAN in DN.
        sensor: sensor name or `Sensor` with C bands.
        max_value: normalisation constant overriding the sensor's max DN.
        caller: prefix of the error messages (`"adapt"`, ...).

    Returns:
        The `Sensor`, finite float64 `ms` `(h, w, C)` and `pan` `(4h, 4w)`,
        and the positive scale (max DN) that fits the data.

    Raises:
        ValueError: see the module docstring.
    """
    if not isinstance(model, keras.Model):
        raise ValueError(
            f"{caller}: expected a keras.Model, got {type(model).__name__}."
        )
    sensor = get_sensor(sensor)
    ms = as_float_image(ms, "ms", allow_2d=False)
    pan = as_pan(pan)
    check_pair(ms, pan, 4)
    bands = ms.shape[2]
    model_bands = getattr(model, "bands", None)
    if model_bands is not None and bands != model_bands:
        raise ValueError(
            f"{caller}: ms has {bands} bands but the model takes {model_bands}. For "
            "8-band data and a 4-band model, pass ms[..., sensor.rgbn_indices] "
            "with the sensor's 4-band view (e.g. sensor='WV3_RGBN')."
        )
    if bands != sensor.num_bands:
        raise ValueError(
            f"{caller}: ms has {bands} bands but sensor {sensor.name} has "
            f"{sensor.num_bands} (for the 4-band view use e.g. '{sensor.name}_RGBN')."
        )
    scale = float(sensor.max_value if max_value is None else max_value)
    if not scale > 0:
        raise ValueError(f"{caller}: max_value must be > 0, got {max_value}.")
    check_scale(ms, pan, scale, sensor.name, caller)
    return sensor, ms, pan, scale
