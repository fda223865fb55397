"""`FolderReader`: reader of the PanTiny paper's folder datasets (`ms/`, `pan/`)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from keras_pansharp.data.readers.base import PairReader, _interp23tap
from keras_pansharp.data.readers.images import _IMAGE_EXTS, read_image
from keras_pansharp.data.readers.validation import (
    RATIO,
    DataFormatError,
    _check_bands,
    _check_crop,
    _check_finite,
)
from keras_pansharp.sensors import Sensor, get_sensor


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
