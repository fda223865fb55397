"""Shared validation of reader inputs: `DataFormatError`, `RATIO` and checks.

The `_check_*` helpers raise `DataFormatError` naming the file, the key and
what was expected; every reader and `read_scene` use them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from keras_pansharp.sensors import Sensor, get_sensor

RATIO = 4


class DataFormatError(ValueError):
    """A data file or array does not have the expected layout or content."""


def _where(source: str, key: str | None) -> str:
    return f"{source}: key {key!r}" if key else f"{source}"


def _check_dtype(dtype: np.dtype, source: str, key: str | None) -> None:
    dtype = np.dtype(dtype)
    if dtype.kind not in "uif":
        raise DataFormatError(
            f"{_where(source, key)}: expected a real numeric dtype (integer or "
            f"float), got {dtype}."
        )


def _check_finite(arr: np.ndarray, source: str, key: str | None, what: str = ""):
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        n_bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        raise DataFormatError(
            f"{_where(source, key)}{what}: expected finite values, found "
            f"{n_bad} NaN/inf value(s)."
        )


def _resolve_sensor(sensor: str | Sensor | None) -> Sensor | None:
    if sensor is None:
        return None
    return get_sensor(sensor)


def _check_bands(num_bands: int, sensor: Sensor | None, source: str, key: str):
    if sensor is not None and num_bands != sensor.num_bands:
        hint = ""
        if sensor.num_bands == 8 and num_bands == 4:
            hint = (
                f" For 4-band (blue, green, red, NIR) data of an 8-band sensor "
                f"declare sensor={sensor.name.lower()}_rgbn."
            )
        raise DataFormatError(
            f"{_where(source, key)}: has {num_bands} bands but sensor "
            f"{sensor.name} has {sensor.num_bands}.{hint}"
        )


def _check_pair_shapes(
    ms_shape: Sequence[int],
    pan_shape: Sequence[int],
    source: str,
    ms_key: str,
    pan_key: str,
) -> None:
    """ms_shape = (h, w), pan_shape = (H, W): require H == 4h and W == 4w."""
    h, w = ms_shape
    hp, wp = pan_shape
    if h < 1 or w < 1:
        raise DataFormatError(
            f"{_where(source, ms_key)}: expected a non-empty image, got size {h}x{w}."
        )
    if (hp, wp) != (RATIO * h, RATIO * w):
        raise DataFormatError(
            f"{source}: PAN {pan_key!r} must be {RATIO}x the size of MS {ms_key!r}: "
            f"expected PAN {RATIO * h}x{RATIO * w} for MS {h}x{w}, got PAN {hp}x{wp}."
        )


def _check_crop(crop, size_hw, source):
    if crop is None:
        return None
    top, left, size = (int(v) for v in crop)
    hp, wp = size_hw
    if size <= 0 or size % RATIO or top % RATIO or left % RATIO:
        raise ValueError(
            f"{source}: crop (top={top}, left={left}, size={size}) must use "
            f"non-negative multiples of {RATIO} (PAN pixels)."
        )
    if top < 0 or left < 0 or top + size > hp or left + size > wp:
        raise ValueError(
            f"{source}: crop (top={top}, left={left}, size={size}) is outside the "
            f"{hp}x{wp} sample."
        )
    return top, left, size
