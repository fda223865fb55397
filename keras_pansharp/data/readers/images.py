"""`read_image`: one image array from a GeoTIFF/TIFF, a plain image or a `.mat`.

Also the low-level TIFF, plain-image and MATLAB (v5 / v7.3) loaders and
`_pick_key`, which finds a variable among candidate names in a `.mat` file.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from keras_pansharp.data.readers.validation import DataFormatError, _check_dtype

_IMAGE_EXTS = (".tif", ".tiff", ".png", ".bmp", ".jpg", ".jpeg")


def read_tiff(path: Path) -> np.ndarray:
    """The first image series of a TIFF file, channels last.

    tifffile decodes it; a compression tifffile needs `imagecodecs` for (LZW,
    JPEG, ...) is read with GDAL through rasterio when rasterio is installed.

    Raises:
        DataFormatError: the file is not a readable TIFF (names the file), or
            its compression needs `imagecodecs` or rasterio and neither is
            installed.
    """
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            axes = series.axes
            arr = series.asarray()
    except Exception as e:
        if "imagecodecs" in str(e):
            return _read_tiff_gdal(path, e)
        raise DataFormatError(
            f"{path}: not a readable TIFF file (corrupted or truncated?): {e}"
        ) from e
    arr = np.asarray(arr)
    # Squeeze singleton non-spatial axes, then bring samples/channels last.
    if arr.ndim == 3 and len(axes) == 3 and axes[-1] not in "SC" and axes[0] in "SCIQ":
        arr = np.moveaxis(arr, 0, -1)
    return arr


def _read_tiff_gdal(path: Path, cause: Exception) -> np.ndarray:
    """A TIFF whose compression tifffile cannot decode, read with rasterio."""
    try:
        import rasterio
    except ImportError:
        raise DataFormatError(
            f"{path}: its TIFF compression needs a codec tifffile does not have "
            f"({cause}); install rasterio (pip install rasterio) or imagecodecs."
        ) from cause
    try:
        with warnings.catch_warnings():
            # Plain TIFFs (no geotransform) are read as pixels, as tifffile does.
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                arr = src.read()
    except Exception as e:
        raise DataFormatError(f"{path}: not a readable TIFF file: {e}") from e
    return arr[0] if arr.shape[0] == 1 else np.moveaxis(arr, 0, -1)


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
        arr = read_tiff(path)
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
