"""Windowed GeoTIFF I/O (`keras_pansharp.data.geotiff`) and `fuse_geotiff`."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tifffile

from keras_pansharp.data.geotiff import (
    GeoInfo,
    GeoTiffReader,
    GeoTiffWriter,
    check_alignment,
    describe,
    likely_sensors,
)
from keras_pansharp.models.pantiny import PanTiny
from keras_pansharp.models.pnn import PNN
from keras_pansharp.scene import predict_scene
from keras_pansharp.streaming import _StreamedOutput, fuse_geotiff

ORIGIN = (500000.0, 4000000.0)


def geo_tags(pixel, origin=ORIGIN, epsg=32633, point=False, nodata=None, desc=None):
    """GeoTIFF tags (UTM, PixelScale + Tiepoint) as tifffile extratags."""
    tags = [
        (33550, 12, 3, (pixel, pixel, 0.0), True),
        (33922, 12, 6, (0.0, 0.0, 0.0, origin[0], origin[1], 0.0), True),
        (
            34735,
            3,
            16,
            (1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 2 if point else 1)
            + (3072, 0, 1, epsg),
            True,
        ),
    ]
    if nodata is not None:
        tags.append((42113, 2, 0, str(nodata), True))
    if desc:
        items = "".join(
            f'<Item name="DESCRIPTION" sample="{i}" role="description">{d}</Item>'
            for i, d in enumerate(desc)
        )
        tags.append((42112, 2, 0, f"<GDALMetadata>{items}</GDALMetadata>", True))
    return tags


def write_geotiff(path, arr, layout="tiled", tags=(), **kw):
    """Write `(H, W[, C])` with a given layout (tiled 16x16 zlib by default)."""
    arr = np.asarray(arr)
    common = {"photometric": "minisblack", "metadata": None, "extratags": list(tags)}
    if layout == "tiled":
        kw = {"tile": (16, 16), "compression": "zlib", **kw}
    elif layout == "striped":
        kw = {"rowsperstrip": 5, "compression": "zlib", **kw}
    elif layout == "planar":
        arr = np.moveaxis(arr, -1, 0)
        kw = {"rowsperstrip": 3, "compression": "zlib", "planarconfig": "separate"}
    elif layout == "raw":
        kw = {**kw}
    if arr.ndim == 3 and layout != "planar":
        kw.setdefault("planarconfig", "contig")
    tifffile.imwrite(path, arr, **common, **kw)
    return path


def write_pair(folder, ms, pan, ms_pixel=2.0, pan_pixel=0.5, **kw):
    ms_path = write_geotiff(folder / "ms.tif", ms, tags=geo_tags(ms_pixel), **kw)
    pan_path = write_geotiff(
        folder / "pan.tif", pan, layout="striped", tags=geo_tags(pan_pixel)
    )
    return ms_path, pan_path


def dn_scene(rng, h=16, w=12, bands=4, max_value=2047):
    ms = rng.integers(0, max_value + 1, (h, w, bands)).astype(np.uint16)
    pan = rng.integers(0, max_value + 1, (4 * h, 4 * w)).astype(np.uint16)
    return ms, pan


# --------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["tiled", "striped", "planar", "raw"])
def test_windowed_reads_equal_full_reads(layout, rng, tmp_path):
    img = rng.integers(0, 2048, (50, 37, 5)).astype(np.uint16)
    path = write_geotiff(tmp_path / "img.tif", img, layout=layout)
    with GeoTiffReader(path) as r:
        assert r.shape == img.shape and r.dtype == np.uint16
        np.testing.assert_array_equal(np.asarray(r), img)
        for _ in range(10):
            y0, x0 = rng.integers(0, 45), rng.integers(0, 33)
            h, w = rng.integers(1, 50 - y0 + 1), rng.integers(1, 37 - x0 + 1)
            np.testing.assert_array_equal(
                r.read((y0, x0, h, w)), img[y0 : y0 + h, x0 : x0 + w]
            )
            np.testing.assert_array_equal(
                r[y0 : y0 + h, x0 : x0 + w], img[y0 : y0 + h, x0 : x0 + w]
            )
        np.testing.assert_array_equal(
            r[3:40:3, 1:30:4, [4, 0]], img[3:40:3, 1:30:4][..., [4, 0]]
        )
        np.testing.assert_array_equal(r[7, 2:9], img[7, 2:9])
        np.testing.assert_array_equal(r[-1, -1, 2], img[-1, -1, 2])
        with pytest.raises(ValueError, match="exceeds"):
            r.read((40, 0, 20, 5))
    with GeoTiffReader(path, bands=(1, 2, 4)) as r:
        assert r.shape == (50, 37, 3)
        np.testing.assert_array_equal(r[10:20, 5:30], img[10:20, 5:30][..., [1, 2, 4]])
    with pytest.raises(ValueError, match="out of range"):
        GeoTiffReader(path, bands=(0, 5))


def test_bigtiff_big_endian_and_band_per_page(rng, tmp_path):
    img = rng.integers(0, 4096, (40, 33, 3)).astype(np.uint16)
    big = write_geotiff(tmp_path / "big.tif", img, bigtiff=True, byteorder=">")
    with GeoTiffReader(big) as r:
        assert r.is_bigtiff and r.is_tiled
        np.testing.assert_array_equal(r[5:35, 3:30], img[5:35, 3:30])
    pages = tmp_path / "pages.tif"  # one band per page
    tifffile.imwrite(pages, np.moveaxis(img, -1, 0), photometric="minisblack")
    with GeoTiffReader(pages) as r:
        assert r.shape == img.shape
        np.testing.assert_array_equal(r[5:35, 3:30, 1:], img[5:35, 3:30, 1:])


def test_reads_decode_only_intersecting_tiles(rng, tmp_path):
    img = rng.integers(0, 2048, (128, 128, 4)).astype(np.uint16)
    path = write_geotiff(tmp_path / "img.tif", img)  # 64 tiles of 16 x 16
    with GeoTiffReader(path, cache_mb=0) as r:
        decoded = []
        page = r._pages[0]

        class Spy:  # the page, recording which segments are decoded
            def __getattr__(self, name):
                return getattr(page, name)

            def decode(self, data, index, **kwargs):
                decoded.append(index)
                return page.decode(data, index, **kwargs)

        r._pages[0] = Spy()
        block = r.read((20, 40, 20, 10))  # rows 16..47, cols 32..63: 2 x 2 tiles
        np.testing.assert_array_equal(block, img[20:40, 40:50])
        assert sorted(decoded) == [8 * 1 + 2, 8 * 1 + 3, 8 * 2 + 2, 8 * 2 + 3]


def test_geo_info(tmp_path, rng):
    img = rng.integers(0, 2048, (8, 8, 2)).astype(np.uint16)
    path = write_geotiff(
        tmp_path / "g.tif", img, tags=geo_tags(2.0, nodata=0, desc=["Blue", "NIR"])
    )
    with GeoTiffReader(path) as r:
        g = r.geo
    assert g.is_georeferenced
    assert g.geotransform == (ORIGIN[0], 2.0, 0.0, ORIGIN[1], 0.0, -2.0)
    assert g.pixel_size == (2.0, 2.0) and g.origin == ORIGIN
    assert g.epsg == 32633 and g.crs == "EPSG:32633"
    assert g.nodata == 0.0 and g.band_descriptions == ("Blue", "NIR")
    assert {t[0] for t in g.tags} == {33550, 33922, 34735}
    assert g.band_metadata([1]) == (("DESCRIPTION", 0, "description", "NIR"),)
    # PixelIsPoint: the tiepoint is a pixel centre; GDAL's corner is half a
    # pixel up-left.
    point = write_geotiff(tmp_path / "p.tif", img, tags=geo_tags(2.0, point=True))
    with GeoTiffReader(point) as r:
        assert r.geo.origin == (ORIGIN[0] - 1.0, ORIGIN[1] + 1.0)
    # ModelTransformation (rotation allowed).
    m = (1.0, 0.5, 0, 10.0, 0.5, -1.0, 0, 20.0, 0, 0, 0, 0, 0, 0, 0, 1)
    rot = write_geotiff(tmp_path / "r.tif", img, tags=[(34264, 12, 16, m, True)])
    with GeoTiffReader(rot) as r:
        assert r.geo.geotransform == (10.0, 1.0, 0.5, 20.0, 0.5, -1.0)
    plain = write_geotiff(tmp_path / "n.tif", img)
    with GeoTiffReader(plain) as r:
        assert not r.geo.is_georeferenced and r.geo.crs is None
    assert GeoInfo().pixel_size is None


# --------------------------------------------------------------------------
# MS / PAN consistency
# --------------------------------------------------------------------------


def _pair(tmp_path, ms_tags, pan_tags, pan_size=(64, 48), pan_bands=None):
    ms = np.zeros((16, 12, 4), np.uint16)
    pan = np.zeros(pan_size if pan_bands is None else (*pan_size, pan_bands), np.uint16)
    a = write_geotiff(tmp_path / "ms.tif", ms, tags=ms_tags)
    b = write_geotiff(tmp_path / "pan.tif", pan, tags=pan_tags)
    return GeoTiffReader(a), GeoTiffReader(b)


@pytest.mark.parametrize(
    "ms_tags,pan_tags,pan_size,match",
    [
        (geo_tags(2.0), geo_tags(0.5), (60, 48), "must be 4x the MS size"),
        (geo_tags(2.0), geo_tags(0.6), (64, 48), "not the MS pixel size"),
        (
            geo_tags(2.0),
            geo_tags(0.5, (ORIGIN[0] + 0.3, ORIGIN[1])),
            (64, 48),
            "same extent",
        ),
        (geo_tags(2.0), geo_tags(0.5, epsg=32634), (64, 48), "coordinate reference"),
    ],
    ids=["ratio", "pixel_size", "origin", "crs"],
)
def test_check_alignment_errors(tmp_path, ms_tags, pan_tags, pan_size, match):
    ms, pan = _pair(tmp_path, ms_tags, pan_tags, pan_size)
    with ms, pan, pytest.raises(ValueError, match=match) as err:
        check_alignment(ms, pan)
    assert "ms.tif" in str(err.value) and "pan.tif" in str(err.value)


def test_check_alignment_passes(tmp_path):
    # Within half a PAN pixel: accepted.
    ms, pan = _pair(
        tmp_path, geo_tags(2.0), geo_tags(0.5, (ORIGIN[0] + 0.2, ORIGIN[1]))
    )
    with ms, pan:
        assert check_alignment(ms, pan) == []
    ms, pan = _pair(tmp_path, (), ())
    with ms, pan:
        assert "size ratio" in check_alignment(ms, pan)[0]
    ms, pan = _pair(tmp_path, geo_tags(2.0), ())
    with ms, pan:
        assert "only the MS" in check_alignment(ms, pan)[0]
    ms, pan = _pair(tmp_path, (), (), pan_bands=3)
    with ms, pan, pytest.raises(ValueError, match="swap"):
        check_alignment(ms, pan)


# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------


def test_writer_round_trip_tags_tiling_compression(tmp_path, rng):
    img = rng.integers(1, 2048, (70, 90, 4)).astype(np.uint16)
    tags = geo_tags(0.5)
    out = tmp_path / "out.tif"
    with GeoTiffWriter(
        out, img.shape, geo_tags=tags, nodata=0, band_descriptions="BGRN", tile=32
    ) as w:
        # Windows in any order; a row of tiles is written once complete.
        for r0, c0 in [(0, 45), (0, 0), (35, 0), (35, 45)]:
            w.write(img[r0 : r0 + 35, c0 : c0 + 45], r0, c0)
    with tifffile.TiffFile(out) as tif:
        page = tif.pages[0]
        assert page.is_tiled and (page.tilelength, page.tilewidth) == (32, 32)
        assert page.compression == 8 and page.predictor == 2  # deflate
        for code, _, _, value, _ in tags:
            assert tuple(np.atleast_1d(page.tags[code].value)) == tuple(value)
        assert len(tif.series[0].levels) == 3  # 70x90 -> 35x45 -> 18x23
    with GeoTiffReader(out) as r:
        np.testing.assert_array_equal(np.asarray(r), img)
        assert r.geo.nodata == 0 and r.geo.band_descriptions == tuple("BGRN")
        assert r.geo.geotransform == (ORIGIN[0], 0.5, 0.0, ORIGIN[1], 0.0, -0.5)
    with GeoTiffReader(out, level=1) as r:
        np.testing.assert_array_equal(
            r[:], np.rint(img.reshape(35, 2, 45, 2, 4).mean((1, 3))).astype(np.uint16)
        )


def test_writer_overviews_ignore_nodata(tmp_path):
    img = np.full((4, 4, 1), 8, np.uint16)
    img[0, 0] = img[0, 1] = img[1, 0] = 0  # nodata
    img[2:, 2:] = 0
    with GeoTiffWriter(
        tmp_path / "o.tif", img.shape, nodata=0, tile=16, overviews=1
    ) as w:
        w.write(img)
    with GeoTiffReader(tmp_path / "o.tif", level=1) as r:
        np.testing.assert_array_equal(r[..., 0], [[8, 8], [8, 0]])


def test_writer_is_atomic_and_never_overwrites(tmp_path, rng):
    img = rng.integers(0, 2048, (40, 40, 2)).astype(np.uint16)
    out = tmp_path / "out.tif"
    w = GeoTiffWriter(out, img.shape, tile=16)
    w.write(img[:20], 0, 0)
    assert not out.exists() and w.temp_path.exists()
    assert w.temp_path.parent == tmp_path and w.temp_path.name.startswith(".out.tif")
    with pytest.raises(ValueError, match="only 16 of 40 rows"):
        w.close()
    assert os.listdir(tmp_path) == []
    # An error inside the block leaves nothing behind.
    with pytest.raises(RuntimeError, match="boom"), GeoTiffWriter(out, img.shape) as w:
        w.write(img[:20])
        raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []
    with GeoTiffWriter(out, img.shape, tile=16) as w:
        w.write(img)
    before = out.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite"):
        GeoTiffWriter(out, img.shape)
    with GeoTiffWriter(out, img.shape, tile=16, overwrite=True, compression=None) as w:
        w.write(img[::-1])
    assert out.read_bytes() != before and sorted(os.listdir(tmp_path)) == ["out.tif"]
    np.testing.assert_array_equal(tifffile.imread(out), img[::-1])


def test_writer_input_checks(tmp_path, rng):
    w = GeoTiffWriter(tmp_path / "x.tif", (40, 40, 2), tile=16)
    try:
        with pytest.raises(TypeError, match="round, clip"):
            w.write(np.zeros((4, 4, 2), np.float32))
        with pytest.raises(ValueError, match="exceeds"):
            w.write(np.zeros((4, 4, 2), np.uint16), 38, 0)
        w.write(np.zeros((16, 40, 2), np.uint16), 0, 0)
        with pytest.raises(ValueError, match="already written"):
            w.write(np.zeros((4, 4, 2), np.uint16), 10, 0)
    finally:
        w.abort()
    assert os.listdir(tmp_path) == []


def test_writer_bigtiff_switch(tmp_path):
    small = GeoTiffWriter(tmp_path / "a.tif", (16, 16, 1), overviews=0)
    assert not small.bigtiff
    small.abort()
    huge = GeoTiffWriter(tmp_path / "b.tif", (40000, 40000, 2), overviews=0)
    assert huge.bigtiff  # 6.4 GB uncompressed
    huge.abort()
    with GeoTiffWriter(tmp_path / "c.tif", (40, 40, 1), bigtiff=True, tile=16) as w:
        w.write(np.ones((40, 40), np.uint16))
    with GeoTiffReader(tmp_path / "c.tif") as r:
        assert r.is_bigtiff and r[:].sum() == 1600 and r.num_levels == 3
    with GeoTiffReader(tmp_path / "c.tif", level=2) as r:
        assert r.shape == (10, 10, 1) and (r[:] == 1).all()


def test_gdal_reads_the_output(tmp_path, rng):
    rasterio = pytest.importorskip("rasterio")
    img = rng.integers(1, 2048, (300, 260, 3)).astype(np.uint16)
    out = tmp_path / "out.tif"
    with GeoTiffWriter(
        out,
        img.shape,
        geo_tags=geo_tags(0.5),
        nodata=0,
        band_descriptions="BGR",
        tile=64,
    ) as w:
        w.write(img)
    with rasterio.open(out) as ds:
        assert ds.crs.to_epsg() == 32633
        assert tuple(ds.transform)[:6] == (0.5, 0.0, ORIGIN[0], 0.0, -0.5, ORIGIN[1])
        assert ds.nodata == 0 and ds.descriptions == ("B", "G", "R")
        assert ds.block_shapes[0] == (64, 64) and ds.compression.name == "deflate"
        assert ds.overviews(1) == [2, 4, 8]
        np.testing.assert_array_equal(np.moveaxis(ds.read(), 0, -1), img)


# --------------------------------------------------------------------------
# describe / likely sensor
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bands,max_value,dtype,expect",
    [
        (4, 2047, "uint16", "QB/IKONOS"),
        (4, 1500, "uint16", "QB/IKONOS"),
        (8, 2000, "uint16", "WV2/WV3"),
        (4, 1023, "uint16", "GF2"),
        (4, 4000, "uint16", "Pleiades/SPOT6"),
        (4, 300, "uint16", "unknown"),
        (4, 60000, "uint16", "unknown"),
        (5, 2047, "uint16", "unknown"),
        (4, 0.9, "float32", "unknown"),
        (1, 2047, "uint16", "panchromatic"),
    ],
)
def test_likely_sensors(bands, max_value, dtype, expect):
    assert likely_sensors(bands, max_value, dtype).startswith(expect)


def test_describe(tmp_path, rng):
    img = rng.integers(0, 2048, (32, 24, 4)).astype(np.uint16)
    img[0, 0, 0] = 2047
    path = write_geotiff(tmp_path / "ms.tif", img, tags=geo_tags(2.0, nodata=0))
    info = describe(path)
    assert (info["width"], info["height"], info["bands"]) == (24, 32, 4)
    assert info["layout"] == "tiled" and info["block"] == [16, 16]
    assert info["compression"] == "deflate" and info["epsg"] == 32633
    assert info["pixel_size"] == [2.0, 2.0] and info["origin"] == list(ORIGIN)
    assert info["max_value"] == 2047 and info["nodata"] == 0
    assert info["likely_sensor"].startswith("QB/IKONOS")


# --------------------------------------------------------------------------
# fuse_geotiff: streamed disk to disk, equal to predict_scene in memory
# --------------------------------------------------------------------------


def _in_memory(model, ms, pan, max_value, **kw):
    fused = predict_scene(model, ms, pan, max_value=max_value, verbose=0, **kw)
    return np.clip(np.rint(fused), 0, max_value).astype(np.uint16)


@pytest.mark.parametrize("ms_layout", ["tiled", "striped"])
def test_fuse_geotiff_equals_predict_scene_pnn(tmp_path, rng, ms_layout):
    ms, pan = dn_scene(rng, 32, 24)
    ms_path, pan_path = write_pair(tmp_path, ms, pan, layout=ms_layout)
    model = PNN(bands=4)
    res = fuse_geotiff(
        model, ms_path, pan_path, tmp_path / "out.tif", sensor="qb", tile=64,
        overlap=32, batch_size=3, progress=False, out_tile=32,
    )  # fmt: skip
    assert not res.exact and res.shape == (128, 96, 4)
    ref = _in_memory(model, ms, pan, 2047.0, tile=64, overlap=32, batch_size=3)
    np.testing.assert_array_equal(tifffile.imread(res.path), ref)
    with GeoTiffReader(res.path) as out, GeoTiffReader(pan_path) as p:
        assert out.geo.tags == p.geo.tags  # the PAN's georeferencing
        assert out.is_tiled and out.compression == "deflate"


def test_fuse_geotiff_exact_pantiny_and_bounded_reads(tmp_path, rng, monkeypatch):
    ms, pan = dn_scene(rng, 24, 20, bands=8)
    ms_path, pan_path = write_pair(tmp_path, ms, pan)
    model = PanTiny(bands=4, dim=8, num_heads=1, encoder_depth=1, body_depth=1)
    windows = []
    orig = GeoTiffReader._read

    def spy(self, r0, r1, c0, c1, bands):
        windows.append((r1 - r0) * (c1 - c0))
        return orig(self, r0, r1, c0, c1, bands)

    monkeypatch.setattr(GeoTiffReader, "_read", spy)
    res = fuse_geotiff(
        model, ms_path, pan_path, tmp_path / "out.tif", sensor="wv3", bands="rgbn",
        tile=48, batch_size=2, progress=False, out_tile=16,
    )  # fmt: skip
    monkeypatch.undo()
    assert res.exact and res.bands == (1, 2, 4, 6) and res.sensor.name == "WV3_RGBN"
    rgbn = ms[..., [1, 2, 4, 6]]
    ref = _in_memory(model, rgbn, pan, 2047.0, tile=48, batch_size=2)
    np.testing.assert_array_equal(tifffile.imread(res.path), ref)
    # Never a whole-scene read: at most one PAN tile (or one output row of
    # the PAN for the nodata check), far below the 96 x 80 scene.
    assert max(windows) <= 48 * 80 < 96 * 80


@pytest.mark.parametrize("activation_cache_mb", [256, 0])
def test_fuse_geotiff_exact_defaults_batch_1_and_activation_cache(
    tmp_path, rng, monkeypatch, activation_cache_mb
):
    import keras_pansharp.scene as scene

    ms, pan = dn_scene(rng, 24, 20)
    ms_path, pan_path = write_pair(tmp_path, ms, pan)
    model = PanTiny(bands=4, dim=8, num_heads=1, encoder_depth=1, body_depth=1)
    calls = []
    orig = scene.predict_scene

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return orig(*args, **kwargs)

    monkeypatch.setattr(scene, "predict_scene", spy)
    res = fuse_geotiff(
        model, ms_path, pan_path, tmp_path / "out.tif", sensor="qb", tile=48,
        progress=False, out_tile=16, activation_cache_mb=activation_cache_mb,
    )  # fmt: skip
    monkeypatch.undo()
    # Exact tiling defaults to one tile per call (a small working set) and
    # passes the activation cache on; the output does not depend on either.
    assert res.exact and calls[0]["batch_size"] == 1
    assert calls[0]["cache_mb"] == activation_cache_mb
    ref = _in_memory(model, ms, pan, 2047.0, tile=48, batch_size=3)
    np.testing.assert_array_equal(tifffile.imread(res.path), ref)


def test_fuse_geotiff_nodata_and_georef_from_ms(tmp_path, rng):
    ms, pan = dn_scene(rng, 16, 16)
    pan = np.maximum(pan, 1)
    pan[:8, :8] = 0  # nodata: masked in every band of the output
    ms_path = write_geotiff(
        tmp_path / "ms.tif", ms, tags=geo_tags(2.0, desc=["B", "G", "R", "N"])
    )
    pan_path = write_geotiff(tmp_path / "pan.tif", pan, tags=[(42113, 2, 0, "0", True)])
    model = PNN(bands=4)
    res = fuse_geotiff(
        model, ms_path, pan_path, tmp_path / "o.tif", sensor="qb", tile=64,
        progress=False,
    )  # fmt: skip
    assert "only the MS" in res.notes[0]
    ref = _in_memory(model, ms, pan, 2047.0, tile=64, overlap=32)
    ref[:8, :8] = 0
    with GeoTiffReader(res.path) as out:
        np.testing.assert_array_equal(out[:], ref)
        assert out.geo.nodata == 0 and out.geo.band_descriptions == tuple("BGRN")
        # No PAN georeferencing: the MS's, with pixels 4x smaller.
        assert out.geo.geotransform == (ORIGIN[0], 0.5, 0.0, ORIGIN[1], 0.0, -0.5)
        assert out.geo.epsg == 32633


def test_fuse_geotiff_errors(tmp_path, rng):
    ms, pan = dn_scene(rng, 16, 16, bands=8)
    ms_path, pan_path = write_pair(tmp_path, ms, pan)
    model = PNN(bands=4)
    with pytest.raises(ValueError, match="bands='rgbn'"):
        fuse_geotiff(model, ms_path, pan_path, tmp_path / "o.tif", sensor="wv3")
    with pytest.raises(ValueError, match="has 8 bands but sensor QB has 4"):
        fuse_geotiff(model, ms_path, pan_path, tmp_path / "o.tif", sensor="qb")
    with pytest.raises(FileNotFoundError, match="missing.tif"):
        fuse_geotiff(
            model, tmp_path / "missing.tif", pan_path, tmp_path / "o.tif", sensor="wv3"
        )
    (tmp_path / "o.tif").write_bytes(b"keep")
    with pytest.raises(FileExistsError, match="overwrite"):
        fuse_geotiff(
            model, ms_path, pan_path, tmp_path / "o.tif", sensor="wv3", bands="rgbn"
        )
    assert (tmp_path / "o.tif").read_bytes() == b"keep"


def test_streamed_output_needs_raster_order():
    class Sink:
        def __init__(self):
            self.rows = []

        def write(self, data, row, col):
            self.rows.append((row, data.shape[0]))

    sink = Sink()
    out = _StreamedOutput(sink, (40, 8, 1), 100.0)
    out[0:16, 0:8] = np.full((16, 8, 1), 50.4, np.float32)
    out[8:24, 0:8] = out[8:24, 0:8] + 1.0  # blending accumulates
    assert sink.rows == [(0, 8)]
    with pytest.raises(RuntimeError, match="raster order"):
        out[4:8, 0:8] = np.zeros((4, 8, 1), np.float32)
    out[24:40, 0:8] = np.full((16, 8, 1), 500.0, np.float32)
    out.close()
    assert sink.rows == [(0, 8), (8, 16), (24, 16)]
