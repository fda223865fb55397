"""`keras-pansharp info`: describe rasters (size, layout, georeferencing)."""

from __future__ import annotations

import json
import sys


def _format_info(info: dict) -> str:
    lines = [info["path"]]

    def add(key, value):
        lines.append(f"  {key:<16}{value}")

    add("size", f"{info['width']} x {info['height']} pixels, {info['bands']} band(s)")
    add("dtype", info["dtype"])
    block = info["block"]
    layout = (
        f"tiled {block[1]} x {block[0]}"
        if info["layout"] == "tiled"
        else f"striped, {block[0]} row(s) per strip"
    )
    add(
        "layout",
        f"{layout}, {info['interleave']}-interleaved, {info['compression']} "
        f"compression{', BigTIFF' if info['bigtiff'] else ''}, "
        f"{info['overviews']} overview(s)",
    )
    if info["georeferenced"]:
        px = info["pixel_size"]
        add("crs", info["crs"] or "not given")
        add("pixel size", f"{px[0]:.6g} x {px[1]:.6g}")
        add("origin", f"({info['origin'][0]:.6f}, {info['origin'][1]:.6f})")
    else:
        add("georeferencing", "none")
    add("nodata", "none" if info["nodata"] is None else f"{info['nodata']:g}")
    if any(info["band_descriptions"]):
        add(
            "bands",
            ", ".join(
                f"{i}: {d or '-'}" for i, d in enumerate(info["band_descriptions"])
            ),
        )
    if info["max_value"] is not None:
        add(
            "values",
            f"{info['min_value']:g} .. {info['max_value']:g} "
            f"({info['value_range_from']})",
        )
    add("likely sensor", info["likely_sensor"])
    return "\n".join(lines)


def cmd_info(args) -> int:
    from keras_pansharp.data.geotiff import describe

    infos = [describe(path) for path in args.files]
    if args.format == "json":
        out = infos[0] if len(infos) == 1 else infos
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
    else:
        sys.stdout.write("\n".join(_format_info(i) for i in infos) + "\n")
    return 0


def add_parser(subparsers) -> None:
    """Add `info` and its options to the `keras-pansharp` subparsers."""
    i = subparsers.add_parser(
        "info",
        help="bands, size, layout, georeferencing and likely sensor of a raster",
        description=(
            "Describe GeoTIFF files: size, bands, dtype, tiling, compression, "
            "CRS/EPSG, pixel size, origin, nodata, band descriptions, value "
            "range and the likely sensor (from the band count and max DN)."
        ),
    )
    i.add_argument("files", nargs="+", help="GeoTIFF file(s).")
    i.add_argument("--format", choices=("text", "json"), default="text")
    i.set_defaults(func=cmd_info)
