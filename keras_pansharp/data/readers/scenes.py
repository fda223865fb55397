"""`Scene` (one MS + PAN acquisition) and `read_scene`, its validated reader."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from keras_pansharp.data.readers.arrays import ArrayReader
from keras_pansharp.data.readers.images import _load_mat, _pick_key, read_image
from keras_pansharp.data.readers.validation import (
    DataFormatError,
    _check_bands,
    _check_dtype,
    _check_finite,
    _check_pair_shapes,
    _where,
)
from keras_pansharp.sensors import Sensor, get_sensor

_MS_KEYS = ("ms", "I_MS_LR", "lrms", "MS", "I_MS", "LRMS", "ms_lr")
_PAN_KEYS = ("pan", "I_PAN", "PAN", "P", "Pan")
_GT_KEYS = ("gt", "I_GT", "GT", "hrms", "HRMS")
_LMS_KEYS = ("lms", "bms", "I_MS_UP", "msexp", "LMS")


@dataclasses.dataclass
class Scene:
    """One MS + PAN acquisition (channels-last, DN).

    Attributes:
        ms: `(h, w, C)` multispectral image.
        pan: `(4h, 4w)` panchromatic image.
        sensor: the `Sensor`.
        gt: optional `(4h, 4w, C)` reference (reduced-resolution data).
        source: file name(s) for messages.
    """

    ms: np.ndarray
    pan: np.ndarray
    sensor: Sensor
    gt: np.ndarray | None = None
    source: str = "<scene>"

    def reader(self, max_value: float | None = None) -> ArrayReader:
        """This scene as a one-sample `ArrayReader`."""
        return ArrayReader(
            self.ms,
            self.pan,
            self.sensor,
            gt=self.gt,
            max_value=max_value,
            name=self.source,
        )


def _validate_scene(ms, pan, gt, sensor, ms_src, pan_src, gt_src, ms_key, pan_key):
    ms = np.asarray(ms)
    pan = np.asarray(pan)
    if ms.ndim != 3:
        raise DataFormatError(
            f"{_where(ms_src, ms_key)}: expected an MS image of rank 3 (H, W, C), "
            f"got shape {ms.shape}."
        )
    if pan.ndim == 3 and pan.shape[-1] == 1:
        pan = pan[..., 0]
    if pan.ndim == 3 and pan.shape[0] == 1:
        pan = pan[0]
    if pan.ndim != 2:
        raise DataFormatError(
            f"{_where(pan_src, pan_key)}: expected a single-band PAN image (H, W), "
            f"got shape {pan.shape}."
        )
    src = ms_src if ms_src == pan_src else f"{ms_src} + {pan_src}"
    _check_pair_shapes(ms.shape[:2], pan.shape, src, ms_key or "ms", pan_key or "pan")
    _check_bands(ms.shape[2], sensor, ms_src, ms_key or "ms")
    _check_finite(ms, ms_src, ms_key)
    _check_finite(pan, pan_src, pan_key)
    if gt is not None:
        gt = np.asarray(gt)
        if gt.shape != (*pan.shape, ms.shape[2]):
            raise DataFormatError(
                f"{gt_src}: expected a reference (GT) of shape "
                f"{(*pan.shape, ms.shape[2])} (PAN size, MS bands), got {gt.shape}."
            )
        _check_finite(gt, gt_src, "gt")
    return ms, pan, gt


def _is_file_list(x) -> bool:
    return isinstance(x, (list, tuple)) and all(
        isinstance(f, (str, os.PathLike)) for f in x
    )


def _read_bands(files, key, role: str) -> tuple[np.ndarray, str]:
    """Band groups in several files (e.g. one file per band, or bands 1-4
    and 5-8), stacked along the band axis in the order given.

    Raises:
        DataFormatError: no files, a file that is not an `(H, W)` or
            `(H, W, C)` image, sizes that differ (naming both files), or
            different dtypes.
    """
    if not files:
        raise DataFormatError(f"read_scene: `{role}` is an empty list of files.")
    parts = []
    for f in files:
        arr = read_image(f, key)
        if arr.ndim == 2:
            arr = arr[..., None]
        if arr.ndim != 3:
            raise DataFormatError(
                f"{f}: expected an (H, W) or (H, W, C) {role} image, got shape "
                f"{arr.shape}."
            )
        if parts and arr.shape[:2] != parts[0][1].shape[:2]:
            raise DataFormatError(
                f"{f}: {role} band file of size {arr.shape[:2]}, but {parts[0][0]} "
                f"is {parts[0][1].shape[:2]}; the band files of one image must "
                "have the same size."
            )
        if parts and arr.dtype != parts[0][1].dtype:
            raise DataFormatError(
                f"{f}: {role} band file of dtype {arr.dtype}, but {parts[0][0]} "
                f"is {parts[0][1].dtype}."
            )
        parts.append((f, arr))
    source = " + ".join(str(f) for f, _ in parts)
    return np.concatenate([a for _, a in parts], axis=-1), source


def read_scene(
    ms: str | os.PathLike | np.ndarray | list,
    pan: str | os.PathLike | np.ndarray | None = None,
    *,
    sensor: str | Sensor,
    gt: str | os.PathLike | np.ndarray | list | None = None,
    ms_key: str | None = None,
    pan_key: str | None = None,
    gt_key: str | None = None,
    scale: float = 1.0,
) -> Scene:
    """Read and validate an MS + PAN scene.

    Either two image files (`ms.tif`, `pan.tif`; GeoTIFF georeferencing is
    ignored), one `.mat` file holding both (keys found automatically among
    common names such as `ms`/`I_MS_LR`/`lrms` and `pan`/`I_PAN`, or given
    with `ms_key`/`pan_key`), or arrays. An MS (or reference) delivered as
    several files, one per band or per band group, is a list of files,
    stacked along the band axis in the order given.

    Args:
        ms: MS file path, a list of band files (`[blue.tif, green.tif, ...]`
            or `[bands1-4.tif, bands5-8.tif]`), `.mat` file with both images,
            or `(h, w, C)` array.
        pan: PAN file path or `(4h, 4w)` array; `None` when `ms` is a `.mat`
            file holding both.
        sensor: sensor name or `Sensor`; its band count must match.
        gt: optional reference image (file, list of band files, or array)
            of shape `(4h, 4w, C)`; inside a single `.mat` file, `gt` is
            found automatically.
        ms_key, pan_key, gt_key: variable names inside `.mat` files.
        scale: multiply all values by this (e.g. 2047 for files stored in
            [0, 1] that should be in DN). Default 1 (values used as stored).

    Returns:
        A `Scene` (arrays keep their stored dtype unless `scale != 1`).

    Raises:
        DataFormatError: missing keys, wrong ranks, PAN not 4x MS, band count
            different from the sensor's, NaN/inf, unreadable or empty files,
            band files of different sizes or dtypes.

    Example:

    >>> scene = read_scene("ms.tif", "pan.tif", sensor="wv3")  # doctest: +SKIP
    >>> scene.ms.shape, scene.pan.shape                        # doctest: +SKIP
    ((325, 325, 8), (1300, 1300))
    """
    sensor = get_sensor(sensor)
    ms_src = pan_src = gt_src = "<array>"
    gt_arr = None
    if isinstance(ms, (str, os.PathLike)) and pan is None:
        path = Path(ms)
        if path.suffix.lower() != ".mat":
            raise ValueError(
                f"{path}: pass the PAN file too (only a .mat file can hold both)."
            )
        if not path.is_file():
            raise DataFormatError(f"{path}: file not found.")
        if path.stat().st_size == 0:
            raise DataFormatError(f"{path}: file is empty (0 bytes).")
        data = _load_mat(path)
        ms_src = pan_src = gt_src = str(path)
        ms_key = _pick_key(data, ms_key, _MS_KEYS, "MS image", ms_src)
        pan_key = _pick_key(data, pan_key, _PAN_KEYS, "PAN image", ms_src)
        ms_arr, pan_arr = data[ms_key], data[pan_key]
        if gt is None:
            gt_key = _pick_key(data, gt_key, _GT_KEYS, "reference", ms_src, False)
            gt_arr = data[gt_key] if gt_key else None
        for key in (ms_key, pan_key, gt_key):
            if key:
                _check_dtype(data[key].dtype, ms_src, key)
    else:
        if pan is None:
            raise ValueError(
                "read_scene: `pan` is required unless `ms` is a .mat file."
            )
        if isinstance(ms, (str, os.PathLike)):
            ms_src = str(ms)
            ms_arr = read_image(ms, ms_key)
        elif _is_file_list(ms):
            ms_arr, ms_src = _read_bands(ms, ms_key, "ms")
        else:
            ms_arr = np.asarray(ms)
            _check_dtype(ms_arr.dtype, ms_src, "ms")
        if isinstance(pan, (str, os.PathLike)):
            pan_src = str(pan)
            pan_arr = read_image(pan, pan_key)
        else:
            pan_arr = np.asarray(pan)
            _check_dtype(pan_arr.dtype, pan_src, "pan")
    if gt is not None:
        if isinstance(gt, (str, os.PathLike)):
            gt_src = str(gt)
            gt_arr = read_image(gt, gt_key)
        elif _is_file_list(gt):
            gt_arr, gt_src = _read_bands(gt, gt_key, "gt")
        else:
            gt_arr = np.asarray(gt)
            _check_dtype(gt_arr.dtype, gt_src, "gt")
    ms_arr, pan_arr, gt_arr = _validate_scene(
        ms_arr, pan_arr, gt_arr, sensor, ms_src, pan_src, gt_src, ms_key, pan_key
    )
    if scale != 1.0:
        ms_arr = ms_arr * float(scale)
        pan_arr = pan_arr * float(scale)
        gt_arr = None if gt_arr is None else gt_arr * float(scale)
    source = ms_src if ms_src == pan_src else f"{ms_src} + {pan_src}"
    return Scene(ms=ms_arr, pan=pan_arr, sensor=sensor, gt=gt_arr, source=source)
