"""`check_alignment`: an MS and a PAN GeoTIFF cover the same ground at ratio 4."""

from __future__ import annotations

import math

from keras_pansharp.data.geotiff.georef import (
    GEOKEY_NAMES,
    RATIO,
)
from keras_pansharp.data.geotiff.reader import (
    GeoTiffReader,
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
