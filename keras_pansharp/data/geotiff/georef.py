"""Georeferencing of GeoTIFF files: tags, GeoKeys, GDAL metadata and `GeoInfo`."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

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
