"""`ArrayReader`: reader over in-memory channels-last arrays."""

from __future__ import annotations

import numpy as np

from keras_pansharp.data.readers.base import PairReader, _interp23tap
from keras_pansharp.data.readers.validation import (
    RATIO,
    DataFormatError,
    _check_bands,
    _check_crop,
    _check_dtype,
    _check_finite,
    _check_pair_shapes,
    _where,
)
from keras_pansharp.sensors import Sensor, get_sensor


def _as_batch(arr, name, source, channels_last_rank):
    arr = np.asarray(arr)
    _check_dtype(arr.dtype, source, name)
    if arr.ndim == channels_last_rank - 1:
        arr = arr[None]
    if arr.ndim != channels_last_rank:
        raise DataFormatError(
            f"{_where(source, name)}: expected rank {channels_last_rank - 1} "
            f"(H, W, C) or {channels_last_rank} (N, H, W, C), got shape {arr.shape}."
        )
    return arr


class ArrayReader(PairReader):
    """Reader over in-memory channels-last arrays (DN, any real dtype).

    Args:
        ms: `(N, h, w, C)` or `(h, w, C)`.
        pan: `(N, 4h, 4w)`, `(N, 4h, 4w, 1)`, `(4h, 4w)` or `(4h, 4w, 1)`.
        sensor: sensor name or `Sensor` (its band count must equal `C`).
        gt: optional `(N, 4h, 4w, C)` reduced-resolution reference.
        lms: optional `(N, 4h, 4w, C)`; computed with `interp23tap` if absent.
        max_value: DN mapped to 1.0; defaults to `sensor.max_value`.
        name: a name used in messages.

    Example:

    >>> import numpy as np
    >>> r = ArrayReader(np.ones((2, 8, 8, 4)), np.ones((2, 32, 32)), sensor="gf2")
    >>> r.read(1)["lms"].shape
    (32, 32, 4)
    """

    def __init__(
        self,
        ms: np.ndarray,
        pan: np.ndarray,
        sensor: str | Sensor,
        gt: np.ndarray | None = None,
        lms: np.ndarray | None = None,
        max_value: float | None = None,
        name: str = "<arrays>",
    ):
        self.source = name
        ms = _as_batch(ms, "ms", name, 4)
        pan = np.asarray(pan)
        if pan.ndim == 2 or (pan.ndim == 3 and pan.shape[-1] == 1 and ms.shape[0] == 1):
            pan = pan.reshape((1, *pan.shape[:2]))
        if pan.ndim == 4:
            if pan.shape[-1] != 1:
                raise DataFormatError(
                    f"{name}: key 'pan': expected 1 channel (N, H, W, 1), got shape "
                    f"{pan.shape}."
                )
            pan = pan[..., 0]
        _check_dtype(pan.dtype, name, "pan")
        if pan.ndim != 3:
            raise DataFormatError(
                f"{name}: key 'pan': expected (N, H, W) or (N, H, W, 1), got shape "
                f"{pan.shape}."
            )
        n, h, w, c = ms.shape
        if n == 0:
            raise DataFormatError(f"{name}: key 'ms': holds no samples.")
        if pan.shape[0] != n:
            raise DataFormatError(
                f"{name}: key 'pan': expected {n} samples (as 'ms'), got {pan.shape[0]}."
            )
        _check_pair_shapes((h, w), pan.shape[1:], name, "ms", "pan")
        arrays = {"ms": ms, "pan": pan[..., None]}
        for key, arr in (("gt", gt), ("lms", lms)):
            if arr is None:
                continue
            arr = _as_batch(arr, key, name, 4)
            if arr.shape != (n, RATIO * h, RATIO * w, c):
                raise DataFormatError(
                    f"{name}: key {key!r}: expected shape {(n, RATIO * h, RATIO * w, c)} "
                    f"to match 'ms' {ms.shape}, got {arr.shape}."
                )
            arrays[key] = arr
        for key, arr in arrays.items():
            _check_finite(arr, name, key)
        self.sensor = get_sensor(sensor)
        _check_bands(c, self.sensor, name, "ms")
        self.max_value = float(
            self.sensor.max_value if max_value is None else max_value
        )
        self.has_gt = "gt" in arrays
        self.num_bands = c
        self.pan_size = (RATIO * h, RATIO * w)
        if "lms" not in arrays:
            arrays["lms"] = np.stack([_interp23tap(m) for m in ms])
        self._arrays = arrays

    def __len__(self):
        return self._arrays["ms"].shape[0]

    def read(self, index, crop=None):
        index = self._check_index(index)
        crop = _check_crop(crop, self.pan_size, self.source)
        out = {}
        for key, arr in self._arrays.items():
            a = arr[index]
            if crop is not None:
                t, lf, s = crop
                if key == "ms":
                    t, lf, s = t // RATIO, lf // RATIO, s // RATIO
                a = a[t : t + s, lf : lf + s]
            out[key] = np.array(a, dtype=np.float32)
        return out
