"""`describe` and `likely_sensors`: what a raster file holds (`keras-pansharp info`)."""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from keras_pansharp.data.geotiff.reader import (
    GeoTiffReader,
)

# --------------------------------------------------------------------------
# Description (`keras-pansharp info`)
# --------------------------------------------------------------------------


def likely_sensors(num_bands: int, max_value: float | None, dtype: Any) -> str:
    """Guess the sensor family from the band count and the largest DN.

    Args:
        num_bands: bands of the MS image.
        max_value: the largest pixel value seen (None if unknown).
        dtype: the pixel dtype.

    Returns:
        A short phrase, e.g. `"WV2/WV3 (8 bands, 11-bit)"`, or one starting
        with `"unknown"` when the evidence does not point to one family.
    """
    dtype = np.dtype(dtype)
    if num_bands == 1:
        return "panchromatic band (1 band): any sensor"
    if dtype.kind == "f":
        if max_value is not None and max_value <= 1.0:
            return "unknown (float data in [0, 1]: already normalised, no DN)"
        return "unknown (float data)"
    if max_value is None or max_value <= 0:
        return "unknown (no valid pixel values)"
    bits = max(int(math.ceil(math.log2(max_value + 1))), 1)
    if num_bands == 8:
        if bits <= 11:
            return "WV2/WV3 (8 bands, up to 11-bit DN)"
        return f"unknown (8 bands but {bits}-bit values; WV2/WV3 are 11-bit)"
    if num_bands == 4:
        if bits <= 9:
            return (
                f"unknown (4 bands, max DN {max_value:g}: too dark to tell the bit "
                "depth; GF2 is 10-bit, QB/IKONOS/GeoEye1 11-bit, Pleiades/SPOT6 "
                "12-bit)"
            )
        if bits == 10:
            return "GF2 (4 bands, 10-bit DN) - or a dark 11/12-bit scene"
        if bits == 11:
            return "QB/IKONOS/GeoEye1/WV2-4band/WV3-4band (4 bands, 11-bit DN)"
        if bits == 12:
            return "Pleiades/SPOT6 (4 bands, 12-bit DN)"
        return f"unknown (4 bands, {bits}-bit values)"
    return f"unknown ({num_bands} bands)"


def _value_range(reader: GeoTiffReader, full_limit: int = 2**24, windows: int = 64):
    """`(min, max, how)`: full scan of small images, else a grid of windows."""
    h, w, _ = reader.shape
    nodata = reader.geo.nodata

    def stats(block):
        block = block.astype(np.float64)
        keep = np.isfinite(block)
        if nodata is not None:
            keep &= block != nodata
        vals = block[keep]
        return (vals.min(), vals.max()) if vals.size else None

    found = []
    if h * w <= full_limit:
        how = "full scan"
        step = max(1, 2**22 // max(w, 1))
        for r in range(0, h, step):
            s = stats(reader.read((r, 0, min(step, h - r), w)))
            if s:
                found.append(s)
    else:
        side = 256
        n = int(math.sqrt(windows))
        how = f"sampled from {n * n} windows of {side}x{side}"
        for i in range(n):
            for j in range(n):
                r = int((h - side) * (i + 0.5) / n)
                c = int((w - side) * (j + 0.5) / n)
                s = stats(reader.read((r, c, side, side)))
                if s:
                    found.append(s)
    if not found:
        return None, None, how
    return min(s[0] for s in found), max(s[1] for s in found), how


def describe(path: str | os.PathLike) -> dict[str, Any]:
    """Describe a raster: bands, size, dtype, layout, georeferencing, sensor.

    Reads only the tags and (for images above 16 megapixels) a grid of 64
    windows to estimate the value range, so it is fast on any scene.

    Args:
        path: a GeoTIFF / TIFF file.

    Returns:
        A JSON-serialisable dict (`keras-pansharp info` prints it).

    Example:

    >>> describe("ms.tif")["likely_sensor"]  # doctest: +SKIP
    'QB/IKONOS/GeoEye1/WV2-4band/WV3-4band (4 bands, 11-bit DN)'
    """
    with GeoTiffReader(path) as r:
        h, w, c = r.shape
        geo = r.geo
        lo, hi, how = _value_range(r)
        info: dict[str, Any] = {
            "path": str(r.path),
            "width": w,
            "height": h,
            "bands": c,
            "dtype": str(r.dtype),
            "layout": "tiled" if r.is_tiled else "striped",
            "block": list(r.block_shape),
            "interleave": "band" if r.is_planar else "pixel",
            "compression": r.compression,
            "bigtiff": r.is_bigtiff,
            "overviews": r.num_levels - 1,
            "file_size_bytes": r.path.stat().st_size,
            "georeferenced": geo.is_georeferenced,
            "crs": geo.crs,
            "epsg": geo.epsg,
            "pixel_size": list(geo.pixel_size) if geo.pixel_size else None,
            "origin": list(geo.origin) if geo.origin else None,
            "geotransform": list(geo.geotransform) if geo.geotransform else None,
            "nodata": geo.nodata,
            "band_descriptions": list(geo.band_descriptions),
            "min_value": None if lo is None else float(lo),
            "max_value": None if hi is None else float(hi),
            "value_range_from": how,
            "likely_sensor": likely_sensors(c, hi, r.dtype),
        }
    return info
