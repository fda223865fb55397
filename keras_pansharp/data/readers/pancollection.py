"""`PanCollectionReader`: lazy reader of PanCollection-format HDF5 files."""

from __future__ import annotations

import os
import threading
from pathlib import Path

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
    _resolve_sensor,
)
from keras_pansharp.sensors import Sensor, get_sensor


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
