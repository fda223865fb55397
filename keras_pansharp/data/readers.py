"""Readers for the pan-sharpening data formats users have (REFERENCE §3).

Three families of inputs are supported, all validated on open and on read:

* **PanCollection HDF5** files (`train_wv3.h5`, `test_gf2_multiExm1.h5`, ...):
  datasets `gt`, `ms`, `lms`, `pan`, channels-first `(N, C, H, W)`, values in
  digital numbers (DN). Full-resolution (FR) files have no `gt`. Read lazily,
  one sample (or one crop of one sample) at a time:
  `PanCollectionReader`.
* **Folder datasets** of the PanTiny paper's code (`<root>/train128/ms/*.tif`
  and `<root>/train128/pan/*.tif`, 4-band 8-bit images): `FolderReader`.
* **Scene files** holding one MS and one PAN image of a whole scene: GeoTIFF
  (via tifffile) and MATLAB `.mat` v5 (scipy) or v7.3 (h5py): `read_scene`.

Every reader returns samples as channels-last float32 arrays in DN:
`{"ms": (h, w, C), "pan": (4h, 4w, 1), "lms": (4h, 4w, C)[, "gt": (4h, 4w, C)]}`.
Bad input raises `DataFormatError` (a `ValueError`) naming the file, the key
and what was expected.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from keras_pansharp.sensors import Sensor, get_sensor

__all__ = [
    "DataFormatError",
    "PairReader",
    "PanCollectionReader",
    "ArrayReader",
    "FolderReader",
    "Scene",
    "read_scene",
    "read_image",
    "open_source",
]

RATIO = 4
_MS_KEYS = ("ms", "I_MS_LR", "lrms", "MS", "I_MS", "LRMS", "ms_lr")
_PAN_KEYS = ("pan", "I_PAN", "PAN", "P", "Pan")
_GT_KEYS = ("gt", "I_GT", "GT", "hrms", "HRMS")
_LMS_KEYS = ("lms", "bms", "I_MS_UP", "msexp", "LMS")
_IMAGE_EXTS = (".tif", ".tiff", ".png", ".bmp", ".jpg", ".jpeg")


class DataFormatError(ValueError):
    """A data file or array does not have the expected layout or content."""


# ----------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------
# reader base class
# ----------------------------------------------------------------------------


class PairReader:
    """Base class of the readers: indexable collection of MS/PAN samples.

    Attributes:
        sensor: the `Sensor` of the data (its `num_bands` equals the data's).
        max_value: the DN that maps to 1.0 when normalising (defaults to
            `sensor.max_value`; 255 for 8-bit folder datasets).
        has_gt: whether samples carry a reduced-resolution ground truth.
        pan_size: `(H, W)` of every sample at PAN scale.
        num_bands: number of MS bands.
        source: a human-readable name (file path) for messages.
    """

    sensor: Sensor
    max_value: float
    has_gt: bool
    pan_size: tuple[int, int]
    num_bands: int
    source: str

    def __len__(self) -> int:
        raise NotImplementedError

    def read(
        self, index: int, crop: tuple[int, int, int] | None = None
    ) -> dict[str, np.ndarray]:
        """Read one sample.

        Args:
            index: sample index in `[0, len(self))`.
            crop: optional `(top, left, size)` in PAN pixels (multiples of 4);
                the MS crop is `(top/4, left/4, size/4)`.

        Returns:
            Dict of float32 channels-last arrays in DN: `"ms"` `(h, w, C)`,
            `"pan"` `(H, W, 1)`, `"lms"` `(H, W, C)` and, if `has_gt`,
            `"gt"` `(H, W, C)`.
        """
        raise NotImplementedError

    def _check_index(self, index: int) -> int:
        n = len(self)
        index = int(index)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"{self.source}: index {index} out of range [0, {n}).")
        return index

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.source!r}, sensor={self.sensor.name}, "
            f"n={len(self)}, pan_size={self.pan_size}, bands={self.num_bands}, "
            f"gt={self.has_gt})"
        )


def _interp23tap(ms: np.ndarray) -> np.ndarray:
    from keras_pansharp.signal import interp23tap

    return np.asarray(interp23tap(np.asarray(ms, np.float64)), np.float32)


# ----------------------------------------------------------------------------
# PanCollection HDF5
# ----------------------------------------------------------------------------


class PanCollectionReader(PairReader):
    """Lazy reader of a PanCollection-format HDF5 file.

    The file holds datasets `ms` `(N, C, h, w)`, `pan` `(N, 1, 4h, 4w)`,
    `lms` `(N, C, 4h, 4w)` and, for reduced-resolution (RR) files, `gt`
    `(N, C, 4h, 4w)`; any real numeric dtype, values in DN. Only the
    requested sample (or crop) is read from disk, so multi-GB training files
    are never loaded whole. When `lms` is missing it is computed per sample
    with `interp23tap`.

    The HDF5 handle is opened lazily and re-opened after a `fork` (each
    worker process gets its own handle); it is not pickled. Reads from
    several threads are serialised by a lock.

    Args:
        path: path of the `.h5` file.
        sensor: sensor name or `Sensor`. If `None`, the file attribute
            `sensor` (written by `make_training_set`) is used; otherwise an
            error is raised.
        max_value: DN mapped to 1.0 when normalising; defaults to
            `sensor.max_value`. Use `1.0` for files already in [0, 1].
        require_gt: `True` to reject FR files (no `gt`), `False` to ignore a
            `gt` if present, `None` (default) to accept both.

    Example:

    >>> reader = PanCollectionReader("train_wv3.h5", sensor="wv3")  # doctest: +SKIP
    >>> sample = reader.read(0, crop=(0, 0, 32))                     # doctest: +SKIP
    >>> sample["pan"].shape, sample["ms"].shape                       # doctest: +SKIP
    ((32, 32, 1), (8, 8, 8))
    """

    def __init__(
        self,
        path: str | os.PathLike,
        sensor: str | Sensor | None = None,
        max_value: float | None = None,
        require_gt: bool | None = None,
    ):
        self.path = Path(path)
        self.source = str(self.path)
        self._file = None
        self._pid = None
        self._dsets = {}
        self._lock = threading.Lock()
        if not self.path.is_file():
            raise DataFormatError(f"{self.source}: file not found.")
        if self.path.stat().st_size == 0:
            raise DataFormatError(f"{self.source}: file is empty (0 bytes).")
        f = self._handle()
        keys = set(f.keys())
        for key in ("ms", "pan"):
            if key not in keys:
                raise DataFormatError(
                    f"{self.source}: missing key {key!r}; a PanCollection file needs "
                    f"'ms' and 'pan' (plus 'lms', and 'gt' for RR data). Found keys: "
                    f"{sorted(keys)}."
                )
        if require_gt and "gt" not in keys:
            raise DataFormatError(
                f"{self.source}: missing key 'gt'; a reduced-resolution file was "
                f"required. Found keys: {sorted(keys)}."
            )
        self._keys = ["ms", "pan"]
        if "lms" in keys:
            self._keys.append("lms")
        self.has_gt = "gt" in keys and require_gt is not False
        if self.has_gt:
            self._keys.append("gt")
        shapes = {}
        for key in self._keys:
            ds = f[key]
            if not hasattr(ds, "shape") or not hasattr(ds, "dtype"):
                raise DataFormatError(
                    f"{self.source}: key {key!r}: expected an HDF5 dataset, got a "
                    f"{type(ds).__name__}."
                )
            _check_dtype(ds.dtype, self.source, key)
            if ds.ndim != 4:
                raise DataFormatError(
                    f"{self.source}: key {key!r}: expected rank 4 (N, C, H, W), got "
                    f"shape {ds.shape}."
                )
            shapes[key] = tuple(int(s) for s in ds.shape)
        n = shapes["ms"][0]
        for key, shp in shapes.items():
            if shp[0] != n:
                raise DataFormatError(
                    f"{self.source}: key {key!r}: expected N = {n} samples (as 'ms'), "
                    f"got {shp[0]}."
                )
        if n == 0:
            raise DataFormatError(f"{self.source}: key 'ms': file holds no samples.")
        if shapes["pan"][1] != 1:
            raise DataFormatError(
                f"{self.source}: key 'pan': expected 1 channel (N, 1, H, W), got "
                f"shape {shapes['pan']}."
            )
        _, c, h, w = shapes["ms"]
        _check_pair_shapes((h, w), shapes["pan"][2:], self.source, "ms", "pan")
        for key in ("lms", "gt"):
            if key in shapes and shapes[key][1:] != (c, RATIO * h, RATIO * w):
                raise DataFormatError(
                    f"{self.source}: key {key!r}: expected shape (N, {c}, {RATIO * h}, "
                    f"{RATIO * w}) to match 'ms' {shapes['ms']}, got {shapes[key]}."
                )
        sensor = _resolve_sensor(sensor)
        if sensor is None:
            attr = f.attrs.get("sensor")
            if attr is None:
                raise ValueError(
                    f"{self.source}: no sensor given and the file has no 'sensor' "
                    "attribute; pass sensor='wv3' (or a Sensor)."
                )
            sensor = get_sensor(attr.decode() if isinstance(attr, bytes) else str(attr))
        _check_bands(c, sensor, self.source, "ms")
        self.sensor = sensor
        self.max_value = float(sensor.max_value if max_value is None else max_value)
        self.num_bands = c
        self.pan_size = (RATIO * h, RATIO * w)
        self._n = n

    # h5py handles must not cross a fork: reopen in every new process.
    def _handle(self):
        pid = os.getpid()
        if self._file is None or self._pid != pid:
            import h5py

            try:
                self._file = h5py.File(self.path, "r")
            except OSError as e:
                raise DataFormatError(
                    f"{self.source}: not a readable HDF5 file (corrupted or "
                    f"truncated?): {e}"
                ) from e
            self._pid = pid
            self._dsets = {}
        return self._file

    def _dataset(self, key):
        f = self._handle()
        ds = self._dsets.get(key)
        if ds is None:
            ds = self._dsets[key] = f[key]
        return ds

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_file"] = None
        state["_pid"] = None
        state["_lock"] = None
        state["_dsets"] = {}
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the HDF5 handle (it is reopened on the next read)."""
        if self._file is not None and self._pid == os.getpid():
            try:
                self._file.close()
            except Exception:
                pass
        self._file = None
        self._dsets = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __len__(self) -> int:
        return self._n

    def _read_key(self, key, index, sl):
        try:
            arr = self._dataset(key)[(index, slice(None), *sl)]
        except DataFormatError:
            raise
        except Exception as e:  # h5py raises OSError/KeyError on bad chunks
            raise DataFormatError(
                f"{self.source}: key {key!r}: could not read sample {index} "
                f"(corrupted file?): {e}"
            ) from e
        arr = np.asarray(arr)
        _check_finite(arr, self.source, key, f" sample {index}")
        # channels-last view; no copy for float32 files
        return np.moveaxis(arr, 0, -1).astype(np.float32, copy=False)

    def read(self, index, crop=None):
        index = self._check_index(index)
        crop = _check_crop(crop, self.pan_size, self.source)
        if crop is None:
            full = (slice(None), slice(None))
            low = full
        else:
            t, lf, s = crop
            full = (slice(t, t + s), slice(lf, lf + s))
            low = (
                slice(t // RATIO, (t + s) // RATIO),
                slice(lf // RATIO, (lf + s) // RATIO),
            )
        with self._lock:
            out = {
                "ms": self._read_key("ms", index, low),
                "pan": self._read_key("pan", index, full),
            }
            if "lms" in self._keys:
                out["lms"] = self._read_key("lms", index, full)
            if self.has_gt:
                out["gt"] = self._read_key("gt", index, full)
        if "lms" not in out:
            if crop is None:
                out["lms"] = _interp23tap(out["ms"])
            else:
                with self._lock:
                    ms_full = self._read_key("ms", index, (slice(None), slice(None)))
                out["lms"] = _interp23tap(ms_full)[full]
        return out


# ----------------------------------------------------------------------------
# in-memory arrays
# ----------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------
# single images and scenes (GeoTIFF, MATLAB .mat v5 / v7.3, images)
# ----------------------------------------------------------------------------


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            axes = series.axes
            arr = series.asarray()
    except Exception as e:
        raise DataFormatError(
            f"{path}: not a readable TIFF file (corrupted or truncated?): {e}"
        ) from e
    arr = np.asarray(arr)
    # Squeeze singleton non-spatial axes, then bring samples/channels last.
    if arr.ndim == 3 and len(axes) == 3 and axes[-1] not in "SC" and axes[0] in "SCIQ":
        arr = np.moveaxis(arr, 0, -1)
    return arr


def _read_plain_image(path: Path) -> np.ndarray:
    import imageio.v3 as iio

    try:
        return np.asarray(iio.imread(path))
    except Exception as e:
        raise DataFormatError(
            f"{path}: not a readable image file (corrupted or truncated?): {e}"
        ) from e


def _load_mat(path: Path) -> dict[str, np.ndarray]:
    """All numeric arrays of a MATLAB file, in MATLAB's (row, col, band) order."""
    import scipy.io

    try:
        data = scipy.io.loadmat(str(path))
    except NotImplementedError:
        # MATLAB v7.3 = HDF5 with reversed (column-major) axes.
        import h5py

        out = {}
        try:
            with h5py.File(path, "r") as f:
                for key, ds in f.items():
                    if key.startswith("#") or not hasattr(ds, "dtype"):
                        continue
                    if ds.dtype.kind in "uifb":
                        out[key] = np.asarray(ds[()]).transpose()
        except OSError as e:
            raise DataFormatError(
                f"{path}: not a readable MATLAB v7.3 (HDF5) file: {e}"
            ) from e
        return out
    except Exception as e:
        raise DataFormatError(
            f"{path}: not a readable MATLAB .mat file (corrupted, truncated or "
            f"empty?): {e}"
        ) from e
    return {
        k: np.asarray(v)
        for k, v in data.items()
        if not k.startswith("__") and isinstance(v, np.ndarray)
    }


def _pick_key(
    data: Mapping[str, Any],
    key: str | None,
    candidates: Sequence[str],
    what: str,
    source: str,
    required: bool = True,
) -> str | None:
    if key is not None:
        if key not in data:
            raise DataFormatError(
                f"{source}: missing key {key!r} ({what}). Found keys: {sorted(data)}."
            )
        return key
    found = [k for k in candidates if k in data]
    if len(found) > 1:
        raise DataFormatError(
            f"{source}: ambiguous {what}: keys {found} all present; pass the key "
            f"explicitly."
        )
    if not found:
        if not required:
            return None
        raise DataFormatError(
            f"{source}: missing {what}: expected one of the keys {list(candidates)}, "
            f"found {sorted(data)}. Pass the key explicitly."
        )
    return found[0]


def read_image(path: str | os.PathLike, key: str | None = None) -> np.ndarray:
    """Read one image array from a GeoTIFF/TIFF, a plain image or a `.mat` file.

    TIFF files stored band-sequential (planar) are returned channels-last.
    `.mat` files (v5 via scipy, v7.3 via h5py) need `key` unless they hold a
    single numeric array.

    Args:
        path: file path (`.tif`, `.tiff`, `.png`, `.jpg`, `.bmp`, `.mat`).
        key: variable name inside a `.mat` file.

    Returns:
        The array in its stored dtype, `(H, W)` or `(H, W, C)`.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found.")
    if path.stat().st_size == 0:
        raise DataFormatError(f"{path}: file is empty (0 bytes).")
    ext = path.suffix.lower()
    if ext in (".tif", ".tiff"):
        arr = _read_tiff(path)
    elif ext == ".mat":
        data = _load_mat(path)
        if key is None:
            if len(data) != 1:
                raise DataFormatError(
                    f"{path}: holds {len(data)} arrays {sorted(data)}; pass key=."
                )
            key = next(iter(data))
        elif key not in data:
            raise DataFormatError(
                f"{path}: missing key {key!r}. Found keys: {sorted(data)}."
            )
        arr = data[key]
    elif ext in _IMAGE_EXTS:
        arr = _read_plain_image(path)
    else:
        raise DataFormatError(
            f"{path}: unsupported file type {ext!r}; expected .tif, .tiff, .mat or "
            f"an image ({', '.join(_IMAGE_EXTS)})."
        )
    _check_dtype(arr.dtype, str(path), key)
    return arr


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


def read_scene(
    ms: str | os.PathLike | np.ndarray,
    pan: str | os.PathLike | np.ndarray | None = None,
    *,
    sensor: str | Sensor,
    gt: str | os.PathLike | np.ndarray | None = None,
    ms_key: str | None = None,
    pan_key: str | None = None,
    gt_key: str | None = None,
    scale: float = 1.0,
) -> Scene:
    """Read and validate an MS + PAN scene.

    Either two image files (`ms.tif`, `pan.tif`; GeoTIFF georeferencing is
    ignored), one `.mat` file holding both (keys found automatically among
    common names such as `ms`/`I_MS_LR`/`lrms` and `pan`/`I_PAN`, or given
    with `ms_key`/`pan_key`), or arrays.

    Args:
        ms: MS file path, `.mat` file with both images, or `(h, w, C)` array.
        pan: PAN file path or `(4h, 4w)` array; `None` when `ms` is a `.mat`
            file holding both.
        sensor: sensor name or `Sensor`; its band count must match.
        gt: optional reference image (file or array) of shape `(4h, 4w, C)`;
            inside a single `.mat` file, `gt` is found automatically.
        ms_key, pan_key, gt_key: variable names inside `.mat` files.
        scale: multiply all values by this (e.g. 2047 for files stored in
            [0, 1] that should be in DN). Default 1 (values used as stored).

    Returns:
        A `Scene` (arrays keep their stored dtype unless `scale != 1`).

    Raises:
        DataFormatError: missing keys, wrong ranks, PAN not 4x MS, band count
            different from the sensor's, NaN/inf, unreadable or empty files.

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


# ----------------------------------------------------------------------------
# the PanTiny paper's folder datasets
# ----------------------------------------------------------------------------


class FolderReader(PairReader):
    """Reader of the PanTiny paper's folder datasets (e.g. `WV3_data/train128`).

    Layout: `<folder>/ms/<name>.tif` (4-band 8-bit reference MS) and
    `<folder>/pan/<name>.tif` (single-band 8-bit PAN at the *same* size, e.g.
    128 x 128), paired by file name. As in the paper's code, the low-resolution
    MS is the reference downsampled by bicubic x1/4 (MATLAB-style, with
    antialiasing: `keras_pansharp.signal.imresize_bicubic`) and values are in
    [0, 255] (`max_value = 255`). `lms` is `interp23tap` of the LR MS (the
    library-wide convention) or, with `lms="bicubic"`, bicubic x4 as in the
    paper's code.

    Files are read lazily, one sample at a time.

    Args:
        folder: the split folder holding `ms/` and `pan/`.
        sensor: sensor of the data, e.g. `"wv3"`. 8-band sensors become their
            4-band (blue, green, red, NIR) view, since the files have 4 bands.
        max_value: DN mapped to 1.0 (default 255, 8-bit data).
        lms: `"interp23tap"` (default) or `"bicubic"`.
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        sensor: str | Sensor,
        max_value: float = 255.0,
        lms: str = "interp23tap",
    ):
        self.folder = Path(folder)
        self.source = str(self.folder)
        if lms not in ("interp23tap", "bicubic"):
            raise ValueError(f"lms must be 'interp23tap' or 'bicubic', got {lms!r}.")
        self._lms = lms
        ms_dir, pan_dir = self.folder / "ms", self.folder / "pan"
        for d in (ms_dir, pan_dir):
            if not d.is_dir():
                raise DataFormatError(
                    f"{self.folder}: missing sub-folder {d.name!r}; expected "
                    f"{self.folder}/ms/*.tif and {self.folder}/pan/*.tif."
                )

        def listing(d):
            return {
                p.name: p
                for p in sorted(d.iterdir())
                if p.suffix.lower() in _IMAGE_EXTS and p.is_file()
            }

        ms_files, pan_files = listing(ms_dir), listing(pan_dir)
        if not ms_files:
            raise DataFormatError(f"{ms_dir}: no image files found.")
        missing = sorted(set(ms_files) ^ set(pan_files))
        if missing:
            raise DataFormatError(
                f"{self.folder}: 'ms' and 'pan' must hold the same file names; "
                f"unpaired: {missing[:5]}{' ...' if len(missing) > 5 else ''}."
            )
        self._names = sorted(ms_files)
        self._ms_files = [ms_files[n] for n in self._names]
        self._pan_files = [pan_files[n] for n in self._names]
        sensor = get_sensor(sensor)
        if sensor.num_bands == 8:
            sensor = sensor.rgbn()
        self.sensor = sensor
        self.max_value = float(max_value)
        self.has_gt = True
        first = self._load(0)
        self.pan_size = first["pan"].shape[:2]
        self.num_bands = first["gt"].shape[-1]

    def __len__(self):
        return len(self._names)

    def _load(self, index):
        from keras_pansharp.signal import imresize_bicubic

        ms_path, pan_path = self._ms_files[index], self._pan_files[index]
        gt = read_image(ms_path)
        pan = read_image(pan_path)
        if gt.ndim != 3:
            raise DataFormatError(
                f"{ms_path}: expected a multi-band image (H, W, C), got shape "
                f"{gt.shape}."
            )
        _check_bands(gt.shape[-1], self.sensor, str(ms_path), "ms")
        if pan.ndim == 3 and pan.shape[-1] == 1:
            pan = pan[..., 0]
        if pan.ndim != 2:
            raise DataFormatError(
                f"{pan_path}: expected a single-band PAN image (H, W), got shape "
                f"{pan.shape}."
            )
        if pan.shape != gt.shape[:2]:
            raise DataFormatError(
                f"{pan_path}: expected PAN of the same size as the MS reference "
                f"{gt.shape[:2]}, got {pan.shape}."
            )
        if gt.shape[0] % RATIO or gt.shape[1] % RATIO:
            raise DataFormatError(
                f"{ms_path}: image size {gt.shape[:2]} must be a multiple of {RATIO}."
            )
        if hasattr(self, "pan_size") and pan.shape != tuple(self.pan_size):
            raise DataFormatError(
                f"{pan_path}: expected size {self.pan_size} like the folder's first "
                f"sample, got {pan.shape}."
            )
        _check_finite(gt, str(ms_path), None)
        _check_finite(pan, str(pan_path), None)
        gt = gt.astype(np.float64)
        ms = np.asarray(imresize_bicubic(gt, 1.0 / RATIO), np.float64)
        if self._lms == "bicubic":
            lms = np.asarray(imresize_bicubic(ms, float(RATIO)), np.float32)
        else:
            lms = _interp23tap(ms)
        return {
            "ms": ms.astype(np.float32),
            "pan": pan.astype(np.float32)[..., None],
            "lms": lms,
            "gt": gt.astype(np.float32),
        }

    def read(self, index, crop=None):
        index = self._check_index(index)
        crop = _check_crop(crop, self.pan_size, self.source)
        out = self._load(index)
        if crop is not None:
            t, lf, s = crop
            for key in out:
                if key == "ms":
                    q = RATIO
                    out[key] = out[key][t // q : (t + s) // q, lf // q : (lf + s) // q]
                else:
                    out[key] = out[key][t : t + s, lf : lf + s]
        return out


# ----------------------------------------------------------------------------


def open_source(
    source: Any,
    sensor: str | Sensor | None = None,
    max_value: float | None = None,
) -> PairReader:
    """Turn a path, reader, `Scene` or dict of arrays into a `PairReader`.

    Args:
        source: a `PairReader` (returned as is); an `.h5` path
            (`PanCollectionReader`); a folder with `ms/` and `pan/`
            (`FolderReader`); a `Scene`; or a dict of channels-last arrays
            `{"ms", "pan"[, "lms", "gt"]}` in DN (`ArrayReader`).
        sensor: sensor of the data (ignored for readers, which carry one).
        max_value: optional normalisation constant override.

    Returns:
        A `PairReader`.
    """
    if isinstance(source, PairReader):
        return source
    if isinstance(source, Scene):
        return source.reader(max_value)
    if isinstance(source, Mapping):
        unknown = set(source) - {"ms", "pan", "lms", "gt"}
        if unknown or not {"ms", "pan"} <= set(source):
            raise DataFormatError(
                f"array source: expected keys 'ms', 'pan' (and optional 'lms', "
                f"'gt'), got {sorted(source)}."
            )
        if sensor is None:
            raise ValueError("array source: a sensor is required.")
        return ArrayReader(
            source["ms"],
            source["pan"],
            sensor,
            gt=source.get("gt"),
            lms=source.get("lms"),
            max_value=max_value,
        )
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            if sensor is None:
                raise ValueError(f"{path}: a sensor is required.")
            kwargs = {} if max_value is None else {"max_value": max_value}
            return FolderReader(path, sensor, **kwargs)
        if path.suffix.lower() in (".h5", ".hdf5", ".he5"):
            return PanCollectionReader(path, sensor=sensor, max_value=max_value)
        if not path.exists():
            raise DataFormatError(f"{path}: file not found.")
        raise DataFormatError(
            f"{path}: unsupported data source; expected a PanCollection .h5 file, "
            "a folder with ms/ and pan/, a reader, or a dict of arrays."
        )
    raise TypeError(
        f"Unsupported data source of type {type(source).__name__}; expected a path, "
        "a PairReader, a Scene or a dict of arrays."
    )
