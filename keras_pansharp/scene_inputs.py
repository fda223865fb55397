"""Checks of one DN scene given to a model transform (calibration, adaptation).

`calibrate_detail_gain` and `adapt` take a model and one scene in digital
numbers (DN) and refuse, with the same errors, what they cannot use: a
non-Keras model, NaN/inf, PAN not 4x the MS, a band count other than the
model's and the sensor's, and data whose range contradicts the scale
(negative values, values above the max DN, or data already normalised given
with a DN sensor). The data are never rescaled or altered.
"""

from __future__ import annotations

import keras
import numpy as np

from keras_pansharp.sensors import Sensor, get_sensor
from keras_pansharp.signal.checks import as_float_image, as_pan, check_pair

__all__ = ["check_scale", "scene_inputs"]


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
        ValueError: negative values, values above `max_value`, or data at
            most 1 with a `max_value` above 1 (already normalised).
    """
    hi = float(max(ms.max(), pan.max()))
    lo = float(min(ms.min(), pan.min()))
    if lo < 0:
        raise ValueError(
            f"{caller}: ms/pan contain negative values (min {lo}); expected digital "
            "numbers (DN) >= 0."
        )
    if hi > max_value * 1.0001:
        raise ValueError(
            f"{caller}: values up to {hi:g} exceed the max DN {max_value:g} of "
            f"sensor {name}; wrong sensor, or pass max_value= for this data."
        )
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
