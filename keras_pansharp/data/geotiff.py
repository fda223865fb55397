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

from __future__ import annotations

import collections
import contextlib
import dataclasses
import math
import os
import queue
import threading
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from keras_pansharp.data.readers.validation import DataFormatError

__all__ = [
    "GeoInfo",
    "GeoTiffReader",
    "GeoTiffWriter",
    "check_alignment",
    "describe",
    "likely_sensors",
    "GEO_TAGS",
]

RATIO = 4

#: GeoTIFF georeferencing tags (copied verbatim from the PAN to the output).
GEO_TAGS = {
    33550: "ModelPixelScale",
    33922: "ModelTiepoint",
    34264: "ModelTransformation",
    34735: "GeoKeyDirectory",
    34736: "GeoDoubleParams",
    34737: "GeoAsciiParams",
}
GDAL_METADATA = 42112
GDAL_NODATA = 42113

GEOKEY_NAMES = {
    1024: "GTModelType",
    1025: "GTRasterType",
    1026: "GTCitation",
    2048: "GeographicType",
    2049: "GeogCitation",
    2050: "GeogGeodeticDatum",
    2052: "GeogLinearUnits",
    2054: "GeogAngularUnits",
    2056: "GeogEllipsoid",
    3072: "ProjectedCSType",
    3073: "PCSCitation",
    3074: "Projection",
    3075: "ProjCoordTrans",
    3076: "ProjLinearUnits",
    4096: "VerticalCSType",
}
# Keys that name or describe but do not define the CRS.
_CRS_IGNORED_KEYS = {1025, 1026, 2049, 3073}
_USER_DEFINED = 32767

_COMPRESSION_NAMES = {
    1: "none",
    5: "lzw",
    7: "jpeg",
    8: "deflate",
    32946: "deflate",
    34925: "lzma",
    50000: "zstd",
    50001: "webp",
    34887: "lerc",
}


# --------------------------------------------------------------------------
# Georeferencing
# --------------------------------------------------------------------------


def _tag_value(tags, code):
    tag = tags.get(code)
    return None if tag is None else tag.value


def _parse_geokeys(directory, doubles, ascii_params) -> dict[int, Any]:
    """GeoKeyDirectory -> `{key id: value}` (doubles/ASCII resolved)."""
    keys: dict[int, Any] = {}
    if directory is None or len(directory) < 4:
        return keys
    directory = [int(v) for v in directory]
    count = directory[3]
    for i in range(count):
        entry = directory[4 + 4 * i : 8 + 4 * i]
        if len(entry) < 4:
            break
        key, location, n, value = entry
        if location == 0:
            keys[key] = value
        elif location == 34736 and doubles is not None:
            vals = tuple(float(v) for v in list(doubles)[value : value + n])
            keys[key] = vals[0] if n == 1 else vals
        elif location == 34737 and ascii_params is not None:
            text = str(ascii_params)[value : value + n]
            keys[key] = text.rstrip("|").strip()
        else:
            keys[key] = value
    return keys


def _parse_gdal_metadata(xml: str | None) -> tuple[list[tuple], dict[int, str]]:
    """GDAL_METADATA XML -> `(items, band descriptions)`.

    `items` are `(name, sample or None, role or None, text)` tuples.
    """
    if not xml:
        return [], {}
    try:
        root = ET.fromstring(str(xml).strip().rstrip("\x00"))
    except ET.ParseError:
        return [], {}
    items, descriptions = [], {}
    for item in root.iter("Item"):
        sample = item.get("sample")
        sample = int(sample) if sample is not None and sample.isdigit() else None
        role = item.get("role")
        text = item.text or ""
        items.append((item.get("name", ""), sample, role, text))
        if sample is not None and (
            role == "description" or item.get("name", "").upper() == "DESCRIPTION"
        ):
            descriptions[sample] = text
    return items, descriptions


def gdal_metadata_xml(items: Sequence[tuple]) -> str | None:
    """Build a GDAL_METADATA XML string from `(name, sample, role, text)`."""
    if not items:
        return None
    root = ET.Element("GDALMetadata")
    for name, sample, role, text in items:
        attrs = {"name": name}
        if sample is not None:
            attrs["sample"] = str(sample)
        if role is not None:
            attrs["role"] = role
        ET.SubElement(root, "Item", attrs).text = text
    return ET.tostring(root, encoding="unicode")


@dataclasses.dataclass(frozen=True)
class GeoInfo:
    """Georeferencing and GDAL metadata of one GeoTIFF.

    Attributes:
        geotransform: GDAL-style affine `(x0, dx, rx, y0, ry, dy)` mapping
            pixel corner `(col, row)` to `(x0 + col*dx + row*rx, y0 + col*ry +
            row*dy)` (PixelIsArea convention, as GDAL reports it), or None
            when the file is not georeferenced.
        geokeys: `{GeoKey id: value}` (CRS definition), empty if absent.
        nodata: the GDAL nodata value, or None.
        band_descriptions: per-band descriptions (None where absent).
        metadata_items: GDAL_METADATA items `(name, sample, role, text)`.
        tags: the raw georeferencing tags as tifffile `extratags` tuples
            `(code, dtype, count, value, True)`, for copying to an output.
    """

    geotransform: tuple[float, ...] | None = None
    geokeys: dict = dataclasses.field(default_factory=dict)
    nodata: float | None = None
    band_descriptions: tuple[str | None, ...] = ()
    metadata_items: tuple[tuple, ...] = ()
    tags: tuple[tuple, ...] = ()

    @classmethod
    def from_page(cls, page, num_bands: int) -> GeoInfo:
        """Parse the georeferencing of a tifffile `TiffPage`."""
        tags = page.tags
        keys = _parse_geokeys(
            _tag_value(tags, 34735), _tag_value(tags, 34736), _tag_value(tags, 34737)
        )
        gt = None
        matrix = _tag_value(tags, 34264)
        scale = _tag_value(tags, 33550)
        tie = _tag_value(tags, 33922)
        if matrix is not None and len(matrix) >= 8:
            m = [float(v) for v in matrix]
            gt = (m[3], m[0], m[1], m[7], m[4], m[5])
        elif scale is not None and tie is not None and len(tie) >= 6:
            sx, sy = float(scale[0]), float(scale[1])
            i, j, x, y = float(tie[0]), float(tie[1]), float(tie[3]), float(tie[4])
            gt = (x - i * sx, sx, 0.0, y + j * sy, 0.0, -sy)
        if gt is not None and keys.get(1025) == 2:  # PixelIsPoint -> area
            x0, dx, rx, y0, ry, dy = gt
            gt = (x0 - 0.5 * (dx + rx), dx, rx, y0 - 0.5 * (ry + dy), ry, dy)
        nodata = None
        raw_nodata = _tag_value(tags, GDAL_NODATA)
        if raw_nodata is not None:
            with contextlib.suppress(ValueError):
                nodata = float(str(raw_nodata).strip().rstrip("\x00"))
        items, desc = _parse_gdal_metadata(_tag_value(tags, GDAL_METADATA))
        raw = tuple(
            (t.code, int(t.dtype), t.count, t.value, True)
            for code in GEO_TAGS
            if (t := tags.get(code)) is not None
        )
        return cls(
            geotransform=gt,
            geokeys=keys,
            nodata=nodata,
            band_descriptions=tuple(desc.get(b) for b in range(num_bands)),
            metadata_items=tuple(items),
            tags=raw,
        )

    @property
    def is_georeferenced(self) -> bool:
        return self.geotransform is not None

    @property
    def pixel_size(self) -> tuple[float, float] | None:
        """`(x size, y size)` of a pixel in CRS units (y size is positive)."""
        if self.geotransform is None:
            return None
        x0, dx, rx, y0, ry, dy = self.geotransform
        return math.hypot(dx, ry), math.hypot(rx, dy)

    @property
    def origin(self) -> tuple[float, float] | None:
        """CRS coordinates `(x, y)` of the top-left corner of pixel (0, 0)."""
        if self.geotransform is None:
            return None
        return self.geotransform[0], self.geotransform[3]

    @property
    def epsg(self) -> int | None:
        """EPSG code of the CRS (projected, else geographic), if given."""
        for key in (3072, 2048):
            value = self.geokeys.get(key)
            if isinstance(value, int) and 0 < value < _USER_DEFINED:
                return value
        return None

    @property
    def crs_name(self) -> str | None:
        """The CRS citation, e.g. `"WGS 84 / UTM zone 33N"`, if given."""
        for key in (3073, 1026, 2049):
            value = self.geokeys.get(key)
            if isinstance(value, str) and value:
                return value
        return None

    @property
    def crs(self) -> str | None:
        """Short CRS description: `"EPSG:32633 (WGS 84 / UTM zone 33N)"`."""
        epsg, name = self.epsg, self.crs_name
        if epsg and name:
            return f"EPSG:{epsg} ({name})"
        if epsg:
            return f"EPSG:{epsg}"
        if name:
            return name
        if self.geokeys:
            return "user-defined (GeoKeys without EPSG code)"
        return None

    @property
    def crs_keys(self) -> dict[int, Any]:
        """The GeoKeys that define the CRS (citations and raster type left out)."""
        return {k: v for k, v in self.geokeys.items() if k not in _CRS_IGNORED_KEYS}

    def band_metadata(self, bands: Sequence[int]) -> tuple[tuple, ...]:
        """GDAL metadata items of the selected bands, renumbered from 0.

        Dataset-level items are kept; per-band items of other bands dropped.
        """
        index = {b: i for i, b in enumerate(bands)}
        out = []
        for name, sample, role, text in self.metadata_items:
            if sample is None:
                out.append((name, None, role, text))
            elif sample in index:
                out.append((name, index[sample], role, text))
        return tuple(out)

    def scaled_tags(self, factor: float) -> tuple[tuple, ...]:
        """Georeferencing tags for the same extent with pixels `factor` x larger.

        Used to georeference a PAN-scale output from the MS (`factor = 1/4`)
        when the PAN file itself carries no georeferencing.
        """
        if self.geotransform is None:
            return ()
        x0, dx, rx, y0, ry, dy = self.geotransform
        dx, rx, ry, dy = dx * factor, rx * factor, ry * factor, dy * factor
        if self.geokeys.get(1025) == 2:  # back to PixelIsPoint
            x0, y0 = x0 + 0.5 * (dx + rx), y0 + 0.5 * (ry + dy)
        kept = [t for t in self.tags if t[0] in (34735, 34736, 34737)]
        if rx == 0 and ry == 0:
            return (
                (33550, 12, 3, (dx, -dy, 0.0), True),
                (33922, 12, 6, (0.0, 0.0, 0.0, x0, y0, 0.0), True),
                *kept,
            )
        matrix = (dx, rx, 0.0, x0, ry, dy, 0.0, y0, 0.0, 0.0, 0.0, 0.0)
        return ((34264, 12, 16, (*matrix, 0.0, 0.0, 0.0, 1.0)), *kept)


# --------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------


def _norm_index(key, size: int, axis_name: str) -> tuple[int, int, int, bool]:
    """A slice or int along one axis -> `(start, stop, step, drop_axis)`."""
    if isinstance(key, slice):
        start, stop, step = key.indices(size)
        if step < 0:
            raise IndexError("GeoTiffReader: negative steps are not supported")
        return start, max(start, stop), step, False
    if isinstance(key, int | np.integer):
        i = int(key) + (size if key < 0 else 0)
        if not 0 <= i < size:
            raise IndexError(f"{axis_name} index {key} out of range for size {size}")
        return i, i + 1, 1, True
    raise IndexError(
        f"GeoTiffReader: {axis_name} index must be an int or a slice, got "
        f"{type(key).__name__}"
    )


class GeoTiffReader:
    """A GeoTIFF as a read-only `(H, W, C)` array-like, read window by window.

    Only the tiles or strips intersecting a window are read and decoded
    (uncompressed contiguous files are memory-mapped), so scenes larger than
    memory can be fed to `predict_scene` directly. Tiled and striped layouts,
    BigTIFF, pixel-interleaved and band-sequential (planar) files and band
    stacks stored one band per page are supported; other multi-page layouts
    are read whole (with a warning).

    Args:
        path: `.tif` / `.tiff` file.
        bands: band indices to expose, in order (e.g. `(1, 2, 4, 6)` for the
            blue/green/red/NIR view of WorldView-3); default all bands.
        level: 0 for the full-resolution image, `k` for the k-th internal
            overview (reduced-resolution page), if the file has one.
        cache_mb: size of the LRU cache of decoded segments (halos and the
            repeated passes of the exact tiled inference re-read segments).

    Attributes:
        shape: `(H, W, C)` with C the number of selected bands.
        dtype: the stored NumPy dtype (returned as is, never rescaled).
        geo: the file's `GeoInfo`.
        num_file_bands: number of bands stored in the file.
        bands: the selected band indices.

    Example:

    >>> with GeoTiffReader("ms.tif", bands=(1, 2, 4, 6)) as ms:  # doctest: +SKIP
    ...     window = ms.read((0, 0, 256, 256))          # (256, 256, 4)
    ...     same = ms[0:256, 0:256]
    """

    def __init__(
        self,
        path: str | os.PathLike,
        bands: Sequence[int] | None = None,
        level: int = 0,
        cache_mb: float = 64,
    ):
        import tifffile

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: file not found")
        if self.path.stat().st_size == 0:
            raise DataFormatError(f"{self.path}: file is empty (0 bytes)")
        try:
            self._tif = tifffile.TiffFile(self.path)
            series = self._tif.series[0]
            levels = series.levels
        except Exception as e:
            raise DataFormatError(
                f"{self.path}: not a readable TIFF file (corrupted or truncated?): {e}"
            ) from e
        if not 0 <= level < len(levels):
            self._tif.close()
            raise ValueError(
                f"{self.path}: level {level} not available; the file has "
                f"{len(levels) - 1} overview level(s)"
            )
        self.level = level
        self.num_levels = len(levels)
        self._series = levels[level]
        self._lock = threading.RLock()
        self._cache: collections.OrderedDict = collections.OrderedDict()
        self._cache_bytes = 0
        self._cache_limit = int(cache_mb * 2**20)
        self._whole = None
        self._setup_layout()
        if self.dtype.kind not in "uif":
            self.close()
            raise DataFormatError(
                f"{self.path}: expected integer or float pixels, got {self.dtype}"
            )
        if bands is None:
            bands = tuple(range(self.num_file_bands))
        bands = tuple(int(b) for b in bands)
        bad = [b for b in bands if not 0 <= b < self.num_file_bands]
        if bad or not bands:
            self.close()
            raise ValueError(
                f"{self.path}: band indices {list(bands)} out of range for a file "
                f"with {self.num_file_bands} band(s) (0-based indices)"
            )
        self.bands = bands
        first = self._tif.pages[0]
        self.geo = GeoInfo.from_page(first, self.num_file_bands)

    # -- layout ------------------------------------------------------------

    def _setup_layout(self) -> None:
        series = self._series
        pages = [p for p in series.pages if p is not None]
        page = pages[0]
        sep, depth, length, width, contig = page.shaped
        self.dtype = np.dtype(page.dtype)
        self._mmaps: dict[int, np.memmap] = {}
        if depth == 1 and len(pages) == 1:
            self._pages = [page]
            self._band_src = [(0, s) for s in range(sep * contig)]
        elif (
            depth == 1
            and sep * contig == 1
            and len(series.shape) == 3
            and (tuple(series.shape) == (len(pages), length, width))
        ):  # one band per page
            self._pages = pages
            self._band_src = [(i, 0) for i in range(len(pages))]
        else:
            warnings.warn(
                f"{self.path}: TIFF layout {series.axes} {tuple(series.shape)} is "
                "read whole into memory (windowed reads need one image per page "
                "or one band per page)",
                stacklevel=3,
            )
            from keras_pansharp.data.readers.images import _read_tiff

            arr = np.asarray(_read_tiff(self.path))
            if arr.ndim == 2:
                arr = arr[..., None]
            self._whole = arr
            self._pages = []
            self._band_src = [(0, s) for s in range(arr.shape[2])]
            self.dtype = arr.dtype
            self.height, self.width = arr.shape[:2]
            self.num_file_bands = arr.shape[2]
            return
        self.height, self.width = int(length), int(width)
        self.num_file_bands = len(self._band_src)
        for i, p in enumerate(self._pages):
            if p.is_memmappable and p.bitspersample == self.dtype.itemsize * 8:
                offset = p.dataoffsets[0]
                self._mmaps[i] = np.memmap(
                    self.path,
                    dtype=self.dtype.newbyteorder(self._tif.byteorder),
                    mode="r",
                    offset=offset,
                    shape=p.shaped,
                )

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, len(self.bands))

    @property
    def ndim(self) -> int:
        return 3

    def __len__(self) -> int:
        return self.height

    @property
    def is_tiled(self) -> bool:
        return bool(self._pages) and self._pages[0].is_tiled

    @property
    def block_shape(self) -> tuple[int, int]:
        """`(rows, cols)` of one tile, or of one strip (`cols` = width)."""
        if not self._pages:
            return (self.height, self.width)
        p = self._pages[0]
        if p.is_tiled:
            return (int(p.tilelength), int(p.tilewidth))
        return (int(min(p.rowsperstrip, self.height)), self.width)

    @property
    def compression(self) -> str:
        if not self._pages:
            return "unknown"
        code = int(self._pages[0].compression)
        return _COMPRESSION_NAMES.get(code, str(code))

    @property
    def is_bigtiff(self) -> bool:
        return bool(self._tif.is_bigtiff)

    @property
    def is_planar(self) -> bool:
        return bool(self._pages) and (
            self._pages[0].planarconfig == 2 or len(self._pages) > 1
        )

    # -- reading -----------------------------------------------------------

    def __getitem__(self, key) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        if any(k is Ellipsis for k in key):
            i = next(i for i, k in enumerate(key) if k is Ellipsis)
            fill = (slice(None),) * (3 - (len(key) - 1))
            key = key[:i] + fill + key[i + 1 :]
        if len(key) > 3:
            raise IndexError(f"GeoTiffReader: too many indices ({len(key)})")
        key = key + (slice(None),) * (3 - len(key))
        r0, r1, rs, rdrop = _norm_index(key[0], self.height, "row")
        c0, c1, cs, cdrop = _norm_index(key[1], self.width, "column")
        bkey = key[2]
        if isinstance(bkey, slice | int | np.integer):
            sel = np.arange(len(self.bands))[bkey]
        else:
            sel = np.asarray(bkey, dtype=int)
        bdrop = np.ndim(sel) == 0
        bands = [self.bands[int(i)] for i in np.atleast_1d(sel)]
        out = self._read(r0, r1, c0, c1, bands)
        if rs != 1 or cs != 1:
            out = out[::rs, ::cs]
        index = (0 if rdrop else slice(None), 0 if cdrop else slice(None))
        out = out[index]
        return out[..., 0] if bdrop else out

    def read(
        self,
        window: tuple[int, int, int, int] | None = None,
        bands: Sequence[int] | None = None,
    ) -> np.ndarray:
        """Read a window `(row, col, height, width)` (default: everything).

        Args:
            window: the window in pixels; it must lie inside the image.
            bands: indices into the selected bands (default: all of them).

        Returns:
            `(height, width, C)` array of the stored dtype.
        """
        if window is None:
            window = (0, 0, self.height, self.width)
        row, col, h, w = (int(v) for v in window)
        if row < 0 or col < 0 or h < 0 or w < 0:
            raise ValueError(f"{self.path}: invalid window {window}")
        if row + h > self.height or col + w > self.width:
            raise ValueError(
                f"{self.path}: window {window} (row, col, height, width) exceeds "
                f"the image size {self.height} x {self.width}"
            )
        sel = range(len(self.bands)) if bands is None else bands
        return self._read(row, row + h, col, col + w, [self.bands[i] for i in sel])

    def __array__(self, dtype=None, copy=None):
        arr = self._read(0, self.height, 0, self.width, list(self.bands))
        return arr if dtype is None else arr.astype(dtype)

    def _read(self, r0, r1, c0, c1, bands: list[int]) -> np.ndarray:
        out = np.zeros((r1 - r0, c1 - c0, len(bands)), dtype=self.dtype)
        if r1 <= r0 or c1 <= c0 or not bands:
            return out
        if self._whole is not None:
            out[...] = self._whole[r0:r1, c0:c1][..., bands]
            return out
        by_page: dict[int, list[tuple[int, int]]] = {}
        for j, b in enumerate(bands):
            p, s = self._band_src[b]
            by_page.setdefault(p, []).append((j, s))
        with self._lock:
            for p, pairs in by_page.items():
                self._read_page(p, pairs, r0, r1, c0, c1, out)
        return out

    def _read_page(self, p, pairs, r0, r1, c0, c1, out) -> None:
        page = self._pages[p]
        outs = [j for j, _ in pairs]
        samples = [s for _, s in pairs]
        separate = page.planarconfig == 2
        mm = self._mmaps.get(p)
        if mm is not None:
            if separate:
                block = mm[samples, 0, r0:r1, c0:c1, 0]
                out[..., outs] = np.moveaxis(np.asarray(block), 0, -1)
            else:
                out[..., outs] = np.asarray(mm[0, 0, r0:r1, c0:c1])[..., samples]
            return
        if page.is_tiled:
            th, tw = int(page.tilelength), int(page.tilewidth)
        else:
            th, tw = int(min(page.rowsperstrip, self.height)), self.width
        nrow = math.ceil(self.height / th)
        ncol = math.ceil(self.width / tw)
        planes = [(s, [(j, 0)]) for j, s in pairs] if separate else [(0, pairs)]
        for plane, plane_pairs in planes:
            for ty in range(r0 // th, (r1 - 1) // th + 1):
                for tx in range(c0 // tw, (c1 - 1) // tw + 1):
                    index = plane * nrow * ncol + ty * ncol + tx
                    seg = self._segment(p, page, index)
                    y0, x0 = ty * th, tx * tw
                    ya, yb = max(r0, y0), min(r1, y0 + th)
                    xa, xb = max(c0, x0), min(c1, x0 + tw)
                    if seg is None:
                        fill = self.geo.nodata if self.geo.nodata is not None else 0
                        for j, _ in plane_pairs:
                            out[ya - r0 : yb - r0, xa - c0 : xb - c0, j] = fill
                        continue
                    part = seg[0, ya - y0 : yb - y0, xa - x0 : xb - x0]
                    for j, s in plane_pairs:
                        out[ya - r0 : yb - r0, xa - c0 : xb - c0, j] = part[..., s]

    def _segment(self, p: int, page, index: int):
        key = (p, index)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        offset, count = page.dataoffsets[index], page.databytecounts[index]
        data = None
        if count:
            fh = self._tif.filehandle
            fh.seek(offset)
            data = fh.read(count)
        kwargs = {}
        if page.compression in (6, 7, 34892, 33007):
            kwargs = {"jpegtables": page.jpegtables, "jpegheader": page.jpegheader}
        try:
            seg, _, _ = page.decode(data, index, **kwargs)
        except Exception as e:  # noqa: BLE001 - codec errors of any kind
            raise DataFormatError(
                f"{self.path}: cannot decode segment {index} ({self.compression} "
                f"compression): {e}"
            ) from e
        if seg is None:
            return None
        seg = np.asarray(seg, dtype=self.dtype)  # native byte order
        self._cache[key] = seg
        self._cache_bytes += seg.nbytes
        while self._cache_bytes > self._cache_limit and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cache_bytes -= old.nbytes
        return seg

    # -- lifetime ------------------------------------------------------------

    def close(self) -> None:
        """Close the file (the reader cannot read afterwards)."""
        self._mmaps = {}
        self._cache.clear()
        self._cache_bytes = 0
        tif = getattr(self, "_tif", None)
        if tif is not None:
            tif.close()

    def __enter__(self) -> GeoTiffReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"GeoTiffReader({str(self.path)!r}, shape={self.shape}, "
            f"dtype={self.dtype}, bands={list(self.bands)})"
        )


# --------------------------------------------------------------------------
# MS / PAN consistency
# --------------------------------------------------------------------------


def _fmt_keys(keys: dict) -> str:
    return ", ".join(
        f"{GEOKEY_NAMES.get(k, f'GeoKey {k}')}={v!r}" for k, v in sorted(keys.items())
    )


def check_alignment(
    ms: GeoTiffReader, pan: GeoTiffReader, ratio: int = RATIO
) -> list[str]:
    """Check that a PAN covers the same ground as an MS at `ratio` x resolution.

    Always: the PAN has one band and is exactly `ratio` x the MS size. When
    both files are georeferenced: same CRS GeoKeys, PAN pixel size = MS pixel
    size / `ratio` and the same origin and far corner within half a PAN
    pixel. Files without georeferencing pass on the size check alone.

    Args:
        ms: the MS reader.
        pan: the PAN reader.
        ratio: resolution ratio (4).

    Returns:
        Notes (strings) about checks that could not be made, e.g. when only
        one of the files is georeferenced.

    Raises:
        ValueError: naming both files and what differs.
    """
    where = f"MS {ms.path} and PAN {pan.path}"
    if pan.num_file_bands != 1 and len(pan.bands) != 1:
        raise ValueError(
            f"PAN {pan.path} has {pan.num_file_bands} bands; a panchromatic image "
            "has one (did you swap --ms and --pan?)"
        )
    mh, mw = ms.height, ms.width
    ph, pw = pan.height, pan.width
    if (ph, pw) != (ratio * mh, ratio * mw):
        got = f"{ph / mh:.3g} x {pw / mw:.3g}" if mh and mw else "undefined"
        raise ValueError(
            f"{where}: the PAN must be {ratio}x the MS size, i.e. {ratio * mh} x "
            f"{ratio * mw} for an MS of {mh} x {mw}; got {ph} x {pw} (ratio {got}). "
            "Crop both to the same extent first"
        )
    g_ms, g_pan = ms.geo, pan.geo
    if not (g_ms.is_georeferenced and g_pan.is_georeferenced):
        if g_ms.is_georeferenced != g_pan.is_georeferenced:
            which = "MS" if g_ms.is_georeferenced else "PAN"
            return [
                f"only the {which} is georeferenced: extent and CRS not checked "
                "(size ratio only)"
            ]
        return ["neither file is georeferenced: size ratio checked only"]
    k_ms, k_pan = g_ms.crs_keys, g_pan.crs_keys
    if k_ms != k_pan:
        diff_ms = {k: v for k, v in k_ms.items() if k_pan.get(k) != v}
        diff_pan = {k: v for k, v in k_pan.items() if k_ms.get(k) != v}
        raise ValueError(
            f"{where} have different coordinate reference systems: MS "
            f"{g_ms.crs or '?'} [{_fmt_keys(diff_ms)}] vs PAN {g_pan.crs or '?'} "
            f"[{_fmt_keys(diff_pan)}]. Reproject one of them first"
        )
    x0, dx, rx, y0, ry, dy = g_ms.geotransform
    px0, pdx, prx, py0, pry, pdy = g_pan.geotransform
    want = (dx / ratio, rx / ratio, ry / ratio, dy / ratio)
    got = (pdx, prx, pry, pdy)
    psize = max(math.hypot(pdx, pry), math.hypot(prx, pdy))
    if any(abs(a - b) > 1e-3 * psize for a, b in zip(want, got)):
        ms_px, pan_px = g_ms.pixel_size, g_pan.pixel_size
        raise ValueError(
            f"{where}: PAN pixel size {pan_px[0]:.6g} x {pan_px[1]:.6g} is not the "
            f"MS pixel size {ms_px[0]:.6g} x {ms_px[1]:.6g} divided by {ratio} "
            f"(ratio {ms_px[0] / pan_px[0]:.4g}); resample to a {ratio}:1 pair first"
        )
    half = 0.5 * psize
    if math.hypot(px0 - x0, py0 - y0) > half:
        raise ValueError(
            f"{where} do not cover the same extent: MS origin ({x0:.6f}, {y0:.6f}) vs "
            f"PAN origin ({px0:.6f}, {py0:.6f}), {math.hypot(px0 - x0, py0 - y0):.4g} "
            f"CRS units apart (more than half a PAN pixel, {half:.4g}). Crop both "
            "to the same extent first"
        )
    far_ms = (x0 + mw * dx + mh * rx, y0 + mw * ry + mh * dy)
    far_pan = (px0 + pw * pdx + ph * prx, py0 + pw * pry + ph * pdy)
    gap = math.hypot(far_ms[0] - far_pan[0], far_ms[1] - far_pan[1])
    if gap > half:
        raise ValueError(
            f"{where} do not cover the same extent: far corners ({far_ms[0]:.6f}, "
            f"{far_ms[1]:.6f}) vs ({far_pan[0]:.6f}, {far_pan[1]:.6f}), {gap:.4g} "
            f"CRS units apart (more than half a PAN pixel, {half:.4g})"
        )
    return []


# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------

_BIGTIFF_LIMIT = 2**32 - 2**26  # classic TIFF offsets are 32-bit; keep a margin
_ABORT = object()


class GeoTiffWriter:
    """Write an image window by window to a tiled, compressed GeoTIFF.

    Windows may come in any order and size; a row of tiles is compressed and
    written (in a background thread) as soon as all its pixels have been
    given, so memory holds only the incomplete rows of tiles. The file is
    written to a temporary name in the same folder and renamed to `path` by
    `close()` (atomic); on error, or `abort()`, the temporary file is
    removed and `path` is left as it was.

    After the full-resolution image, `close()` adds internal overviews
    (reduced-resolution pages, 2x2 average, nodata-aware) read back from the
    written image window by window, until the smallest fits in one tile.

    Args:
        path: output `.tif` path.
        shape: `(H, W, C)` of the image.
        dtype: pixel dtype (default uint16); `write` accepts only data that
            casts safely (round and clip floats first).
        geo_tags: georeferencing tags as tifffile extratags (e.g.
            `GeoTiffReader(pan).geo.tags`), written to the full-resolution page.
        nodata: nodata value (GDAL_NODATA tag), or None.
        band_descriptions: per-band names (GDAL_METADATA), or None.
        metadata_items: further GDAL_METADATA items `(name, sample, role,
            text)` (e.g. `GeoInfo.band_metadata(bands)`); descriptions given
            in `band_descriptions` replace theirs.
        tile: tile side in pixels (multiple of 16).
        compression: tifffile compression name (`"zlib"`: deflate, readable
            everywhere without extra codecs), or None.
        compression_level: deflate level (1: the default, about 90 % of the
            size reduction of GDAL's default level 6 at several times the
            speed, so compression does not limit the fusion; 9: smallest).
        predictor: horizontal differencing before compression (integer data).
        bigtiff: True/False, or None for automatic (BigTIFF when the
            uncompressed image and overviews may exceed 4 GB).
        overviews: number of overview levels, `"auto"` (halve until the image
            fits in one tile) or 0.
        overwrite: replace an existing `path`; otherwise `FileExistsError`.

    Example:

    >>> with GeoTiffWriter("out.tif", (1024, 1024, 4), geo_tags=pan.geo.tags) as w:  # doctest: +SKIP
    ...     for row in range(0, 1024, 256):
    ...         w.write(block[row : row + 256], row, 0)
    """

    def __init__(
        self,
        path: str | os.PathLike,
        shape: Sequence[int],
        dtype: Any = "uint16",
        *,
        geo_tags: Sequence[tuple] = (),
        nodata: float | None = None,
        band_descriptions: Sequence[str | None] | None = None,
        metadata_items: Sequence[tuple] = (),
        tile: int = 256,
        compression: str | None = "zlib",
        compression_level: int | None = 1,
        predictor: bool = True,
        bigtiff: bool | None = None,
        overviews: int | str = "auto",
        overwrite: bool = False,
    ):
        from keras_pansharp.utils.io import atomic_path

        self.path = Path(path)
        shape = tuple(int(s) for s in shape)
        if len(shape) == 2:
            shape = (*shape, 1)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"GeoTiffWriter: shape must be (H, W, C), got {shape}")
        if tile % 16 or tile < 16:
            raise ValueError(
                f"GeoTiffWriter: tile must be a multiple of 16, got {tile}"
            )
        self.shape = shape
        self.dtype = np.dtype(dtype)
        self.tile = int(tile)
        if self.path.exists() and not overwrite:
            raise FileExistsError(
                f"{self.path} exists; pass overwrite=True (--overwrite) to replace it"
            )
        self.overwrite = overwrite
        h, w, c = shape
        if overviews == "auto":
            n, side = 0, max(h, w)
            while side > self.tile:
                side = math.ceil(side / 2)
                n += 1
            overviews = n
        self.overviews = int(overviews)
        if bigtiff is None:
            nbytes = h * w * c * self.dtype.itemsize * (4 / 3 if self.overviews else 1)
            bigtiff = nbytes > _BIGTIFF_LIMIT
        self.bigtiff = bool(bigtiff)
        if nodata is not None and self.dtype.kind in "ui":
            info = np.iinfo(self.dtype)
            if not (float(nodata).is_integer() and info.min <= nodata <= info.max):
                warnings.warn(
                    f"{self.path}: nodata {nodata} is not a {self.dtype} value; "
                    "not written",
                    stacklevel=2,
                )
                nodata = None
        self.nodata = nodata
        items = list(metadata_items)
        if band_descriptions is not None:
            items = [
                i for i in items if not (i[1] is not None and i[2] == "description")
            ]
            items += [
                ("DESCRIPTION", b, "description", str(d))
                for b, d in enumerate(band_descriptions)
                if d
            ]
        xml = gdal_metadata_xml(items)
        self._extratags = list(geo_tags)
        if xml:
            self._extratags.append((GDAL_METADATA, 2, 0, xml, True))
        self._nodata_tag = []
        if nodata is not None:
            text = str(int(nodata)) if float(nodata).is_integer() else repr(nodata)
            self._nodata_tag = [(GDAL_NODATA, 2, 0, text, True)]
        self._write_kw = {
            "tile": (self.tile, self.tile),
            "compression": compression,
            "compressionargs": (
                {"level": int(compression_level)}
                if compression and compression_level is not None
                else None
            ),
            "predictor": (
                True if predictor and compression and self.dtype.kind in "ui" else None
            ),
            "photometric": "minisblack",
            "metadata": None,
            "software": "keras_pansharp",
        }
        if c > 1:
            self._write_kw["planarconfig"] = "contig"
        self._rows_of_tiles = math.ceil(h / self.tile)
        self._next = 0  # next row of tiles to write
        self._pending: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._closed = False
        self._error: BaseException | None = None
        self._stack = contextlib.ExitStack()
        self.temp_path = self._stack.enter_context(atomic_path(self.path))
        self._queue: queue.Queue = queue.Queue(maxsize=2)
        self._thread = threading.Thread(
            target=self._run, name="GeoTiffWriter", daemon=True
        )
        self._thread.start()

    # -- background writer ----------------------------------------------------

    def _tiles(self) -> Iterator[np.ndarray]:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if item is _ABORT:
                raise RuntimeError("GeoTiffWriter aborted")
            yield from (t[..., 0] if t.shape[2] == 1 else t for t in item)

    def _run(self) -> None:
        import tifffile

        try:
            with tifffile.TiffWriter(self.temp_path, bigtiff=self.bigtiff) as tw:
                tw.write(
                    self._tiles(),
                    shape=self.shape if self.shape[2] > 1 else self.shape[:2],
                    dtype=self.dtype,
                    extratags=self._extratags + self._nodata_tag,
                    **self._write_kw,
                )
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller
            self._error = e
            # Drain so that a producer blocked on put() wakes up.
            with contextlib.suppress(queue.Empty):
                while True:
                    self._queue.get_nowait()

    def _put(self, item) -> None:
        while True:
            if self._error is not None:
                raise RuntimeError(
                    f"GeoTiffWriter: writing {self.temp_path} failed: {self._error}"
                ) from self._error
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                if not self._thread.is_alive():
                    raise RuntimeError(
                        f"GeoTiffWriter: the writer thread of {self.path} stopped"
                    ) from self._error

    # -- public API -------------------------------------------------------------

    @property
    def rows_written(self) -> int:
        """Rows already handed to the compressor (no longer writable)."""
        return min(self._next * self.tile, self.shape[0])

    def write(self, data, row: int = 0, col: int = 0) -> None:
        """Write `data` (`(h, w, C)` or `(h, w)`) at `(row, col)`.

        Raises:
            ValueError: the window is outside the image, or touches a row of
                tiles that was already written out.
            TypeError: `data` does not cast safely to the writer's dtype.
        """
        if self._closed:
            raise ValueError(f"GeoTiffWriter: {self.path} is closed")
        data = np.asarray(data)
        if data.ndim == 2:
            data = data[..., None]
        h, w, c = self.shape
        dh, dw = data.shape[:2]
        if data.ndim != 3 or data.shape[2] != c:
            raise ValueError(
                f"GeoTiffWriter: data must have shape (h, w, {c}), got {data.shape}"
            )
        if row < 0 or col < 0 or row + dh > h or col + dw > w:
            raise ValueError(
                f"GeoTiffWriter: window ({row}, {col}, {dh}, {dw}) exceeds the image "
                f"size {h} x {w}"
            )
        if data.dtype != self.dtype and not np.can_cast(data.dtype, self.dtype):
            raise TypeError(
                f"GeoTiffWriter: cannot write {data.dtype} data to a {self.dtype} "
                "image safely; round, clip and cast it first"
            )
        if dh == 0 or dw == 0:
            return
        t = self.tile
        first, last = row // t, (row + dh - 1) // t
        if first < self._next:
            raise ValueError(
                f"GeoTiffWriter: rows {row}:{row + dh} touch rows already written "
                f"(rows < {self.rows_written}); write rows of tiles in order"
            )
        for k in range(first, last + 1):
            buf = self._pending.get(k)
            if buf is None:
                rows = min(t, h - k * t)
                buf = (np.zeros((rows, w, c), self.dtype), np.zeros((rows, w), bool))
                self._pending[k] = buf
            arr, mask = buf
            a, b = max(row, k * t), min(row + dh, (k + 1) * t)
            arr[a - k * t : b - k * t, col : col + dw] = data[a - row : b - row]
            mask[a - k * t : b - k * t, col : col + dw] = True
        while self._next in self._pending and self._pending[self._next][1].all():
            self._flush(self._next)

    def _flush(self, k: int) -> None:
        arr, _ = self._pending.pop(k)
        t = self.tile
        h, w, c = self.shape
        tiles = []
        for x0 in range(0, w, t):
            tile = np.zeros((t, t, c), self.dtype)
            part = arr[:, x0 : x0 + t]
            tile[: part.shape[0], : part.shape[1]] = part
            tiles.append(tile)
        self._put(tiles)
        self._next = k + 1

    def close(self) -> Path:
        """Finish the file: wait for the writer, add overviews, rename.

        Returns:
            The final path.

        Raises:
            ValueError: some pixels were never written (the file is removed).
        """
        if self._closed:
            return self.path
        try:
            if self._next < self._rows_of_tiles:
                raise ValueError(
                    f"GeoTiffWriter: only {self.rows_written} of {self.shape[0]} rows "
                    f"of {self.path} were written completely"
                )
            self._put(None)
            self._thread.join()
            if self._error is not None:
                raise RuntimeError(
                    f"GeoTiffWriter: writing {self.temp_path} failed: {self._error}"
                ) from self._error
            self._write_overviews()
            if self.path.exists() and not self.overwrite:
                raise FileExistsError(
                    f"{self.path} appeared while writing; not overwritten (pass "
                    "overwrite=True to replace it)"
                )
        except BaseException as e:
            self._abort(e)
            raise
        self._closed = True
        self._stack.close()  # os.replace(temp, path)
        return self.path

    def _write_overviews(self) -> None:
        import tifffile

        h, w, c = self.shape
        t = self.tile
        for level in range(1, self.overviews + 1):
            src = GeoTiffReader(self.temp_path, level=level - 1, cache_mb=16)
            sh, sw = src.height, src.width
            oh, ow = math.ceil(sh / 2), math.ceil(sw / 2)

            def tiles(src=src, sh=sh, sw=sw, oh=oh, ow=ow):
                for y in range(0, oh, t):
                    for x in range(0, ow, t):
                        block = src.read(
                            (
                                2 * y,
                                2 * x,
                                min(2 * t, sh - 2 * y),
                                min(2 * t, sw - 2 * x),
                            )
                        )
                        tile = np.zeros((t, t, c), self.dtype)
                        small = _downsample2(block, self.nodata, self.dtype)
                        tile[: small.shape[0], : small.shape[1]] = small
                        yield tile if c > 1 else tile[..., 0]

            try:
                with tifffile.TiffWriter(
                    self.temp_path, append=True, bigtiff=self.bigtiff
                ) as tw:
                    tw.write(
                        tiles(),
                        shape=(oh, ow, c) if c > 1 else (oh, ow),
                        dtype=self.dtype,
                        subfiletype=1,
                        extratags=self._nodata_tag,
                        **self._write_kw,
                    )
            finally:
                src.close()

    def _abort(self, exc: BaseException | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        if self._thread.is_alive():
            with contextlib.suppress(queue.Full):
                self._queue.put(_ABORT, timeout=5)
            self._thread.join(timeout=30)
        exc = exc or RuntimeError("aborted")
        self._stack.__exit__(type(exc), exc, exc.__traceback__)  # removes temp

    def abort(self) -> None:
        """Stop writing and remove the temporary file; `path` is untouched."""
        self._abort()

    def __enter__(self) -> GeoTiffWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is not None:
            self._abort(exc)
        else:
            self.close()

    def __del__(self):
        with contextlib.suppress(Exception):
            if not self._closed:
                self._abort()


def _downsample2(block: np.ndarray, nodata, dtype) -> np.ndarray:
    """2x2 average of `(h, w, C)` ignoring nodata (odd edges: fewer pixels)."""
    h, w, c = block.shape
    ph, pw = h + h % 2, w + w % 2
    vals = np.zeros((ph, pw, c), np.float64)
    vals[:h, :w] = block
    valid = np.zeros((ph, pw, c), bool)
    valid[:h, :w] = True if nodata is None else block != nodata
    vals[~valid] = 0.0
    s = vals.reshape(ph // 2, 2, pw // 2, 2, c).sum((1, 3))
    n = valid.reshape(ph // 2, 2, pw // 2, 2, c).sum((1, 3))
    out = np.divide(s, n, out=np.zeros_like(s), where=n > 0)
    if np.dtype(dtype).kind in "ui":
        out = np.rint(out)
    out = out.astype(dtype)
    if nodata is not None:
        out[n == 0] = nodata
    return out


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
