"""Windowed GeoTIFF I/O: read and write scenes of any size in bounded memory.

- `GeoTiffReader`: an MS or PAN GeoTIFF (tiled or striped, BigTIFF, contig
  or planar bands) as a read-only `(H, W, C)` array-like. `reader[r0:r1,
  c0:c1]` and `reader.read((row, col, height, width))` decode only the tiles
  or strips that intersect the window (uncompressed files are memory-mapped);
  a small LRU cache keeps recently decoded segments. `bands=` selects bands
  (e.g. the blue/green/red/NIR view of 8-band data).
- `GeoInfo`: the georeferencing of a file (geotransform, CRS GeoKeys, EPSG,
  nodata, band descriptions) parsed from its GeoTIFF and GDAL tags.
- `check_alignment(ms, pan)`: the PAN is 4x the MS in size and covers the
  same ground (pixel size / 4, origin within half a PAN pixel, same CRS);
  a `ValueError` names both files and what differs.
- `GeoTiffWriter`: writes an image window by window to a tiled, deflate-
  compressed (level 1 by default: fast) GeoTIFF (BigTIFF when it may exceed 4 GB) with georeferencing,
  nodata, band descriptions and internal overviews, atomically (temporary
  file in the same folder, then `os.replace`); never overwrites unless
  `overwrite=True`.
- `describe(path)`: bands, size, dtype, layout, georeferencing, value range
  and the likely sensor of a raster (`keras-pansharp info`).

Only `tifffile` is needed. Overviews are stored as reduced-resolution pages
after the full-resolution image (GDAL, QGIS and tifffile read them as
internal overviews). This is not the strict Cloud Optimized GeoTIFF byte
order (all IFDs first, smallest overview's data first): the full-resolution
image is streamed while it is computed, and tifffile writes pages in
sequence, so overview data can only follow it. Convert with
`gdal_translate -of COG` (or rasterio's COG driver) when a validated COG is
required.
"""

from keras_pansharp.data.geotiff.alignment import check_alignment
from keras_pansharp.data.geotiff.georef import GEO_TAGS, GeoInfo
from keras_pansharp.data.geotiff.info import describe, likely_sensors
from keras_pansharp.data.geotiff.reader import GeoTiffReader
from keras_pansharp.data.geotiff.writer import GeoTiffWriter

__all__ = [
    "GeoInfo",
    "GeoTiffReader",
    "GeoTiffWriter",
    "check_alignment",
    "describe",
    "likely_sensors",
    "GEO_TAGS",
]
