"""Tests for the data readers: every shared real file, and broken files."""

import os
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import tifffile

from keras_pansharp.data import (
    ArrayReader,
    DataFormatError,
    FolderReader,
    PanCollectionReader,
    Scene,
    open_source,
    read_image,
    read_scene,
)
from keras_pansharp.sensors import generic_sensor, get_sensor

# ---------------------------------------------------------------------------
# every file of ../shared/data
# ---------------------------------------------------------------------------

# (files used, reader call, expected (ms shape, pan shape, has gt))
PLEIADES = generic_sensor(4, bit_depth=12, name="PLEIADES")
SPOT6 = generic_sensor(4, bit_depth=12, name="SPOT6")
EIGHT_BIT = generic_sensor(4, bit_depth=8, name="8BIT")
WV2_STRETCHED = generic_sensor(8, bit_depth=16, name="WV2_STRETCHED")
SIXTEEN_BIT = generic_sensor(4, bit_depth=16, name="16BIT")
KOSHIZUKA_BANDS = ("blue", "green", "red", "nir")


def _scene_cases(d):
    q = d / "qb_abfnet"
    return {
        "wv3_zpnn_fr.mat": (
            ["wv3_zpnn_fr.mat"],
            lambda: read_scene(d / "wv3_zpnn_fr.mat", sensor="wv3"),
            ((32, 32, 8), (128, 128), False),
        ),
        "pleiades_rr_256.mat": (
            ["pleiades_rr_256.mat"],
            lambda: read_scene(d / "pleiades_rr_256.mat", sensor=PLEIADES, scale=2047),
            ((64, 64, 4), (256, 256), True),
        ),
        "wv3_spacenet_fr": (
            ["wv3_spacenet_fr/ms.tif", "wv3_spacenet_fr/pan.tif"],
            lambda: read_scene(
                d / "wv3_spacenet_fr/ms.tif",
                d / "wv3_spacenet_fr/pan.tif",
                sensor="wv3",
            ),
            ((325, 325, 8), (1300, 1300), False),
        ),
        "qb_rr_test": (
            [
                "qb_abfnet/rr_test_ms.tif",
                "qb_abfnet/rr_test_pan.tif",
                "qb_abfnet/rr_test_gt.tif",
            ],
            lambda: read_scene(
                q / "rr_test_ms.tif",
                q / "rr_test_pan.tif",
                gt=q / "rr_test_gt.tif",
                sensor="qb",
            ),
            ((64, 64, 4), (256, 256), True),
        ),
        "qb_rr_train": (
            [
                "qb_abfnet/rr_train_ms.tif",
                "qb_abfnet/rr_train_pan.tif",
                "qb_abfnet/rr_train_gt.tif",
            ],
            lambda: read_scene(
                q / "rr_train_ms.tif",
                q / "rr_train_pan.tif",
                gt=q / "rr_train_gt.tif",
                sensor="qb",
            ),
            ((64, 64, 4), (256, 256), True),
        ),
        "qb_fr": (
            ["qb_abfnet/fr_ms.tif", "qb_abfnet/fr_pan.tif"],
            lambda: read_scene(q / "fr_ms.tif", q / "fr_pan.tif", sensor="qb"),
            ((256, 256, 4), (1024, 1024), False),
        ),
        "pleiades_urban_fr": (
            ["pleiades_urban_fr/ms.tif", "pleiades_urban_fr/pan.tif"],
            lambda: read_scene(
                d / "pleiades_urban_fr/ms.tif",
                d / "pleiades_urban_fr/pan.tif",
                sensor=PLEIADES,
            ),
            ((256, 256, 4), (1024, 1024), False),
        ),
        "spot6_cropland_fr": (
            ["spot6_cropland_fr/ms.tif", "spot6_cropland_fr/pan.tif"],
            lambda: read_scene(
                d / "spot6_cropland_fr/ms.tif",
                d / "spot6_cropland_fr/pan.tif",
                sensor=SPOT6,
            ),
            ((256, 256, 4), (1024, 1024), False),
        ),
        **{
            f"extra_8bit/{name}": (
                [f"extra_8bit/{name}/ms.tif", f"extra_8bit/{name}/pan.tif"],
                lambda name=name: read_scene(
                    d / "extra_8bit" / name / "ms.tif",
                    d / "extra_8bit" / name / "pan.tif",
                    sensor=EIGHT_BIT,
                ),
                ((256, 256, 4), (1024, 1024), False),
            )
            for name in ("dgif1", "dgif5", "mountain_wv2")
        },
        **{
            f"gf2_{split}_fr/{i}": (
                [
                    f"gf2_ucgan/{split}_fr/{i}_ms.tif",
                    f"gf2_ucgan/{split}_fr/{i}_pan.tif",
                ],
                lambda split=split, i=i: read_scene(
                    d / f"gf2_ucgan/{split}_fr/{i}_ms.tif",
                    d / f"gf2_ucgan/{split}_fr/{i}_pan.tif",
                    sensor="gf2",
                ),
                ((size, size, 4), (4 * size, 4 * size), False),
            )
            for split, ids, size in (("train", range(5), 64), ("test", (3, 4), 100))
            for i in ids
        },
        **{
            f"gf2_{split}_rr/{i}": (
                [f"gf2_ucgan/{split}_rr/{i}_{k}.tif" for k in ("ms", "pan", "gt")],
                lambda split=split, i=i: read_scene(
                    d / f"gf2_ucgan/{split}_rr/{i}_ms.tif",
                    d / f"gf2_ucgan/{split}_rr/{i}_pan.tif",
                    gt=d / f"gf2_ucgan/{split}_rr/{i}_gt.tif",
                    sensor="gf2",
                ),
                ((size, size, 4), (4 * size, 4 * size), True),
            )
            for split, ids, size in (("train", range(5), 64), ("test", (2, 3), 100))
            for i in ids
        },
        # 8-band WorldView-2 triplets, each MS and reference in two 4-band
        # files (bands 1-4, 5-8), stretched per band to 16 bits.
        **{
            f"wv2_dpf/{split}/{i}": (
                [
                    f"wv2_dpf/{split}/{kind}/{half}/WV2-{i}.TIF"
                    for kind in ("mul-8", "label-8")
                    for half in ("bands1-4", "bands5-8")
                ]
                + [f"wv2_dpf/{split}/pan-8/WV2-{i}.TIF"],
                lambda split=split, i=i: read_scene(
                    [
                        d / f"wv2_dpf/{split}/mul-8/{half}/WV2-{i}.TIF"
                        for half in ("bands1-4", "bands5-8")
                    ],
                    d / f"wv2_dpf/{split}/pan-8/WV2-{i}.TIF",
                    gt=[
                        d / f"wv2_dpf/{split}/label-8/{half}/WV2-{i}.TIF"
                        for half in ("bands1-4", "bands5-8")
                    ],
                    sensor=WV2_STRETCHED,
                ),
                ((128, 128, 8), (512, 512), True),
            )
            for split, ids in (
                ("TrainData", (2, 5, 6, 15, 16)),
                ("TestData", (1, 3, 4, 7)),
            )
            for i in ids
        },
        "wv2_rio_rr": (
            ["wv2_rio_rr/WV2RioMSLR.tif", "wv2_rio_rr/WV2RioPAN.tif"],
            lambda: read_scene(
                d / "wv2_rio_rr/WV2RioMSLR.tif",
                d / "wv2_rio_rr/WV2RioPAN.tif",
                sensor="wv2",
            ),
            ((128, 128, 8), (512, 512), False),
        ),
        # One file per MS band (LZW-compressed: read through GDAL).
        "koshizuka_4band": (
            [f"koshizuka_4band/lr_{b}.tif" for b in KOSHIZUKA_BANDS]
            + ["koshizuka_4band/pan.tif"],
            lambda: read_scene(
                [d / f"koshizuka_4band/lr_{b}.tif" for b in KOSHIZUKA_BANDS],
                d / "koshizuka_4band/pan.tif",
                sensor=SIXTEEN_BIT,
            ),
            ((300, 300, 4), (1200, 1200), False),
        ),
    }


SCENE_CASES = list(_scene_cases(Path(".")))


@pytest.mark.large
@pytest.mark.parametrize("case", SCENE_CASES)
def test_shared_scene_files(shared_data_dir, case):
    _, call, (ms_shape, pan_shape, has_gt) = _scene_cases(shared_data_dir)[case]
    scene = call()
    assert isinstance(scene, Scene)
    assert scene.ms.shape == ms_shape
    assert scene.pan.shape == pan_shape
    assert (scene.gt is not None) == has_gt
    if has_gt:
        assert scene.gt.shape == (*pan_shape, ms_shape[-1])
    assert np.isfinite(scene.ms).all() and scene.ms.max() > 1  # DN, not [0, 1]
    # every scene feeds the readers used by MultiSensorDataset (crop only)
    reader = scene.reader()
    sample = reader.read(0, crop=(0, 0, 64))
    assert sample["pan"].shape == (64, 64, 1)
    assert sample["ms"].shape == (16, 16, ms_shape[-1])
    assert sample["lms"].shape == (64, 64, ms_shape[-1])
    assert sample["lms"].dtype == np.float32


@pytest.mark.large
def test_shared_pancollection_h5(shared_data_dir):
    path = shared_data_dir / "wv3_rr_patch.h5"
    r = PanCollectionReader(path, sensor="wv3")
    assert len(r) == 1 and r.has_gt and r.num_bands == 8 and r.pan_size == (64, 64)
    s = r.read(0)
    with h5py.File(path, "r") as f:
        np.testing.assert_allclose(s["gt"], np.moveaxis(f["gt"][0], 0, -1), rtol=1e-6)
        np.testing.assert_allclose(s["ms"], np.moveaxis(f["ms"][0], 0, -1), rtol=1e-6)
    crop = r.read(0, crop=(8, 4, 32))
    np.testing.assert_array_equal(crop["pan"], s["pan"][8:40, 4:36])
    np.testing.assert_array_equal(crop["ms"], s["ms"][2:10, 1:9])
    assert r.max_value == 2047
    with pytest.raises(DataFormatError, match="has 8 bands but sensor GF2 has 4"):
        PanCollectionReader(path, sensor="gf2")


@pytest.mark.large
def test_every_shared_file_is_covered(shared_data_dir):
    covered = {"wv3_rr_patch.h5"}
    for files, _, _ in _scene_cases(shared_data_dir).values():
        covered.update(files)
    on_disk = {
        str(p.relative_to(shared_data_dir))
        for p in shared_data_dir.rglob("*")
        if p.is_file() and p.name != "README.md"
    }
    assert on_disk <= covered, f"files without a reader test: {on_disk - covered}"


# ---------------------------------------------------------------------------
# PanCollection HDF5: good and broken files
# ---------------------------------------------------------------------------


def _write_h5(
    path,
    n=3,
    c=4,
    h=8,
    with_gt=True,
    with_lms=True,
    dtype="float64",
    attrs=None,
    **over,
):

    rng = np.random.default_rng(0)
    data = {
        "ms": rng.uniform(0, 1000, (n, c, h, h)),
        "pan": rng.uniform(0, 1000, (n, 1, 4 * h, 4 * h)),
    }
    if with_lms:
        data["lms"] = rng.uniform(0, 1000, (n, c, 4 * h, 4 * h))
    if with_gt:
        data["gt"] = rng.uniform(0, 1000, (n, c, 4 * h, 4 * h))
    data.update(over)
    with h5py.File(path, "w") as f:
        for k, v in data.items():
            if v is None:
                continue
            v = np.asarray(v)
            f.create_dataset(k, data=v if v.dtype.kind in "OSU" else v.astype(dtype))
        for k, v in (attrs or {}).items():
            f.attrs[k] = v
    return data


@pytest.mark.parametrize("dtype", ["uint16", "int32", "float32", "float64"])
def test_pancollection_any_numeric_dtype(tmp_path, dtype):
    path = tmp_path / "ok.h5"
    data = _write_h5(path, dtype=dtype)
    r = PanCollectionReader(path, sensor="gf2")
    assert len(r) == 3 and r.max_value == 1023
    s = r.read(2)
    expect = np.moveaxis(data["gt"][2].astype(dtype), 0, -1).astype(np.float32)
    np.testing.assert_array_equal(s["gt"], expect)
    assert all(v.dtype == np.float32 for v in s.values())
    assert r.read(-1)["pan"].shape == (32, 32, 1)
    with pytest.raises(IndexError):
        r.read(3)


def test_pancollection_fr_file_and_require_gt(tmp_path):
    path = tmp_path / "fr.h5"
    _write_h5(path, with_gt=False)
    r = PanCollectionReader(path, sensor="qb")
    assert not r.has_gt and "gt" not in r.read(0)
    with pytest.raises(DataFormatError, match=r"fr\.h5: missing key 'gt'"):
        PanCollectionReader(path, sensor="qb", require_gt=True)


def test_pancollection_missing_lms_is_computed(tmp_path):
    from keras_pansharp.signal import interp23tap

    path = tmp_path / "nolms.h5"
    data = _write_h5(path, with_lms=False)
    r = PanCollectionReader(path, sensor="gf2")
    s = r.read(1)
    want = interp23tap(np.moveaxis(data["ms"][1], 0, -1))
    np.testing.assert_allclose(s["lms"], want, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(
        r.read(1, crop=(4, 8, 16))["lms"], want[4:20, 8:24], rtol=1e-5, atol=1e-3
    )


def test_pancollection_sensor_from_attribute(tmp_path):
    path = tmp_path / "attr.h5"
    _write_h5(path, c=8, attrs={"sensor": "WV2"})
    assert PanCollectionReader(path).sensor.name == "WV2"
    path2 = tmp_path / "noattr.h5"
    _write_h5(path2)
    with pytest.raises(ValueError, match="no sensor given"):
        PanCollectionReader(path2)


BROKEN_H5 = {
    "missing pan": (dict(pan=None), r"missing key 'pan'"),
    "ms rank 3": (dict(ms=np.ones((3, 8, 8))), r"key 'ms': expected rank 4"),
    "pan 2 channels": (
        dict(pan=np.ones((3, 2, 32, 32))),
        r"key 'pan': expected 1 channel",
    ),
    "pan not 4x": (
        dict(pan=np.ones((3, 1, 24, 24))),
        r"PAN 'pan' must be 4x the size of MS 'ms'",
    ),
    "gt wrong size": (
        dict(gt=np.ones((3, 4, 16, 16))),
        r"key 'gt': expected shape \(N, 4, 32, 32\)",
    ),
    "lms wrong bands": (
        dict(lms=np.ones((3, 3, 32, 32))),
        r"key 'lms': expected shape",
    ),
    "N mismatch": (dict(pan=np.ones((2, 1, 32, 32))), r"key 'pan': expected N = 3"),
    "no samples": (
        dict(
            ms=np.ones((0, 4, 8, 8)),
            pan=np.ones((0, 1, 32, 32)),
            lms=np.ones((0, 4, 32, 32)),
            gt=np.ones((0, 4, 32, 32)),
        ),
        r"holds no samples",
    ),
    "string dtype": (
        dict(ms=np.array([b"a", b"b"])),
        r"key 'ms': expected a real numeric dtype",
    ),
    "complex dtype": (dict(ms=np.ones((3, 4, 8, 8), np.complex64)), r"numeric dtype"),
}


@pytest.mark.parametrize("case", list(BROKEN_H5))
def test_pancollection_broken_layouts(tmp_path, case):
    over, msg = BROKEN_H5[case]
    path = tmp_path / "bad.h5"
    if case == "complex dtype":
        _write_h5(path, ms=None)
        with h5py.File(path, "a") as f:
            f.create_dataset("ms", data=over["ms"])
    else:
        _write_h5(path, **over)
    with pytest.raises(DataFormatError, match=msg) as err:
        PanCollectionReader(path, sensor="gf2")
    assert str(path) in str(err.value)


def test_pancollection_group_instead_of_dataset(tmp_path):
    path = tmp_path / "group.h5"
    _write_h5(path, ms=None)
    with h5py.File(path, "a") as f:
        f.create_group("ms")
    with pytest.raises(DataFormatError, match="key 'ms': expected an HDF5 dataset"):
        PanCollectionReader(path, sensor="gf2")


def test_pancollection_band_count_vs_sensor(tmp_path):
    path = tmp_path / "bands.h5"
    _write_h5(path, c=4)
    with pytest.raises(
        DataFormatError, match=r"has 4 bands but sensor WV3 has 8.*wv3_rgbn"
    ):
        PanCollectionReader(path, sensor="wv3")
    assert PanCollectionReader(path, sensor="wv3_rgbn").num_bands == 4


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_pancollection_nan_inf_on_read(tmp_path, bad):
    path = tmp_path / "nan.h5"
    ms = np.ones((3, 4, 8, 8))
    ms[1, 2, 3, 4] = bad
    _write_h5(path, ms=ms)
    r = PanCollectionReader(path, sensor="gf2")
    r.read(0)
    with pytest.raises(
        DataFormatError, match=r"nan\.h5: key 'ms' sample 1: expected finite"
    ):
        r.read(1)


def test_pancollection_empty_corrupted_missing(tmp_path):
    empty = tmp_path / "empty.h5"
    empty.write_bytes(b"")
    with pytest.raises(DataFormatError, match=r"empty\.h5: file is empty"):
        PanCollectionReader(empty, sensor="gf2")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(DataFormatError, match=r"junk\.h5: not a readable HDF5 file"):
        PanCollectionReader(junk, sensor="gf2")
    good = tmp_path / "trunc.h5"
    _write_h5(good, n=4, h=16)
    raw = good.read_bytes()
    good.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataFormatError, match=r"trunc\.h5"):
        r = PanCollectionReader(good, sensor="gf2")
        for i in range(len(r)):
            r.read(i)
    with pytest.raises(DataFormatError, match="file not found"):
        PanCollectionReader(tmp_path / "nope.h5", sensor="gf2")


def test_pancollection_reopens_after_fork_and_pickles(tmp_path):
    path = tmp_path / "p.h5"
    _write_h5(path)
    r = PanCollectionReader(path, sensor="gf2")
    first = r.read(0)["pan"]
    r._pid = -1  # as seen from a forked child: the handle belongs to another pid
    np.testing.assert_array_equal(r.read(0)["pan"], first)
    assert r._pid == os.getpid()
    clone = pickle.loads(pickle.dumps(r))
    assert clone._file is None or clone._pid == os.getpid()
    np.testing.assert_array_equal(clone.read(0)["pan"], first)
    r.close()
    np.testing.assert_array_equal(r.read(0)["pan"], first)  # reopens lazily


def test_crop_validation(tmp_path):
    path = tmp_path / "c.h5"
    _write_h5(path)
    r = PanCollectionReader(path, sensor="gf2")
    with pytest.raises(ValueError, match="multiples of 4"):
        r.read(0, crop=(1, 0, 16))
    with pytest.raises(ValueError, match="outside"):
        r.read(0, crop=(24, 0, 16))


# ---------------------------------------------------------------------------
# scenes: GeoTIFF, .mat v5 and v7.3, broken files
# ---------------------------------------------------------------------------


def _write_mat73(path, arrays):
    """A MATLAB v7.3 file: HDF5 with a 512-byte user block and MATLAB header."""
    with h5py.File(path, "w", userblock_size=512) as f:
        for k, v in arrays.items():
            f.create_dataset(k, data=np.asarray(v).T)  # MATLAB is column-major
    header = (
        b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: test HDF5 schema 1.00 ."
    )
    header = header.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM"
    with open(path, "r+b") as fh:
        fh.write(header)


def test_mat_v5_and_v73(tmp_path):
    rng = np.random.default_rng(1)
    ms = rng.integers(0, 2047, (8, 8, 4)).astype(np.uint16)
    pan = rng.integers(0, 2047, (32, 32)).astype(np.uint16)
    scipy.io.savemat(tmp_path / "v5.mat", {"I_MS_LR": ms, "I_PAN": pan})
    s5 = read_scene(tmp_path / "v5.mat", sensor="qb")
    np.testing.assert_array_equal(s5.ms, ms)
    _write_mat73(tmp_path / "v73.mat", {"ms": ms, "pan": pan})
    with pytest.raises(NotImplementedError):
        scipy.io.loadmat(tmp_path / "v73.mat")  # really a v7.3 file
    s73 = read_scene(tmp_path / "v73.mat", sensor="qb")
    np.testing.assert_array_equal(s73.ms, ms)
    np.testing.assert_array_equal(s73.pan, pan)
    np.testing.assert_array_equal(read_image(tmp_path / "v73.mat", key="pan"), pan)


def test_mat_key_errors(tmp_path):
    ms = np.ones((8, 8, 4))
    scipy.io.savemat(tmp_path / "nopan.mat", {"ms": ms})
    with pytest.raises(
        DataFormatError, match=r"nopan\.mat: missing PAN image.*'I_PAN'"
    ):
        read_scene(tmp_path / "nopan.mat", sensor="qb")
    scipy.io.savemat(
        tmp_path / "two.mat", {"ms": ms, "lrms": ms, "pan": np.ones((32, 32))}
    )
    with pytest.raises(DataFormatError, match="ambiguous MS image"):
        read_scene(tmp_path / "two.mat", sensor="qb")
    assert read_scene(tmp_path / "two.mat", sensor="qb", ms_key="lrms").ms.shape == (
        8,
        8,
        4,
    )
    with pytest.raises(DataFormatError, match="missing key 'foo'"):
        read_scene(tmp_path / "two.mat", sensor="qb", ms_key="foo")
    (tmp_path / "empty.mat").write_bytes(b"")
    with pytest.raises(DataFormatError, match=r"empty\.mat: file is empty"):
        read_scene(tmp_path / "empty.mat", sensor="qb")
    (tmp_path / "junk.mat").write_bytes(os.urandom(300))
    with pytest.raises(DataFormatError, match=r"junk\.mat: not a readable MATLAB"):
        read_scene(tmp_path / "junk.mat", sensor="qb")


def test_tiff_scene_errors(tmp_path):
    rng = np.random.default_rng(2)
    ms = rng.integers(0, 1023, (8, 8, 4)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "ms.tif", ms)
    tifffile.imwrite(
        tmp_path / "pan.tif", rng.integers(0, 1023, (32, 32)).astype(np.uint16)
    )
    tifffile.imwrite(tmp_path / "pan3x.tif", np.ones((24, 24), np.uint16))
    # band-sequential (planar) storage is returned channels-last
    tifffile.imwrite(
        tmp_path / "planar.tif", np.moveaxis(ms, -1, 0), planarconfig="separate"
    )
    np.testing.assert_array_equal(read_image(tmp_path / "planar.tif"), ms)
    sc = read_scene(tmp_path / "ms.tif", tmp_path / "pan.tif", sensor="gf2")
    assert sc.ms.dtype == np.uint16 and sc.pan.shape == (32, 32)
    with pytest.raises(
        DataFormatError,
        match=r"PAN 'pan' must be 4x.*expected PAN 32x32 .* got PAN 24x24",
    ):
        read_scene(tmp_path / "ms.tif", tmp_path / "pan3x.tif", sensor="gf2")
    with pytest.raises(
        DataFormatError, match=r"ms\.tif: key 'ms': has 4 bands but sensor WV3 has 8"
    ):
        read_scene(tmp_path / "ms.tif", tmp_path / "pan.tif", sensor="wv3")
    with pytest.raises(DataFormatError, match="expected an MS image of rank 3"):
        read_scene(tmp_path / "pan.tif", tmp_path / "pan.tif", sensor="gf2")
    nan = ms.astype(np.float32)
    nan[0, 0, 0] = np.nan
    tifffile.imwrite(tmp_path / "nan.tif", nan)
    with pytest.raises(DataFormatError, match=r"nan\.tif.*NaN/inf"):
        read_scene(tmp_path / "nan.tif", tmp_path / "pan.tif", sensor="gf2")
    raw = (tmp_path / "ms.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(raw[:100])
    with pytest.raises(DataFormatError, match=r"cut\.tif: not a readable TIFF"):
        read_scene(tmp_path / "cut.tif", tmp_path / "pan.tif", sensor="gf2")
    (tmp_path / "empty.tif").write_bytes(b"")
    with pytest.raises(DataFormatError, match=r"empty\.tif: file is empty"):
        read_scene(tmp_path / "empty.tif", tmp_path / "pan.tif", sensor="gf2")
    with pytest.raises(DataFormatError, match="expected a reference"):
        read_scene(ms, np.ones((32, 32)), gt=np.ones((32, 32, 3)), sensor="gf2")
    with pytest.raises(DataFormatError, match="unsupported file type"):
        read_image(_touch(tmp_path / "x.xyz"))


def _touch(p):
    p.write_bytes(b"abc")
    return p


# ---------------------------------------------------------------------------
# arrays, folder datasets, dispatch
# ---------------------------------------------------------------------------


def test_array_reader_shapes_and_errors():
    from keras_pansharp.signal import interp23tap

    rng = np.random.default_rng(3)
    ms = rng.uniform(0, 255, (2, 8, 8, 4))
    pan = rng.uniform(0, 255, (2, 32, 32))
    r = ArrayReader(ms, pan, "gf2", max_value=255)
    assert len(r) == 2 and not r.has_gt and r.max_value == 255
    np.testing.assert_allclose(
        r.read(1)["lms"], interp23tap(ms[1]), rtol=1e-5, atol=1e-3
    )
    single = ArrayReader(ms[0], pan[0][..., None], "gf2")
    assert len(single) == 1
    with pytest.raises(DataFormatError, match="PAN 'pan' must be 4x"):
        ArrayReader(ms, pan[:, :16, :16], "gf2")
    with pytest.raises(DataFormatError, match="key 'gt': expected shape"):
        ArrayReader(ms, pan, "gf2", gt=np.ones((2, 16, 16, 4)))
    bad = ms.copy()
    bad[0, 0, 0, 0] = np.inf
    with pytest.raises(DataFormatError, match="key 'ms'.*NaN/inf"):
        ArrayReader(bad, pan, "gf2")
    with pytest.raises(DataFormatError, match="key 'pan': expected 2 samples"):
        ArrayReader(ms, pan[:1], "gf2")


def _make_folder(root, n=3, size=32, bands=4):
    rng = np.random.default_rng(4)
    (root / "ms").mkdir(parents=True)
    (root / "pan").mkdir()
    for i in range(n):
        tifffile.imwrite(
            root / "ms" / f"{i}.tif",
            rng.integers(0, 256, (size, size, bands)).astype(np.uint8),
        )
        tifffile.imwrite(
            root / "pan" / f"{i}.tif",
            rng.integers(0, 256, (size, size)).astype(np.uint8),
        )


def test_folder_reader(tmp_path):
    from keras_pansharp.signal import imresize_bicubic

    root = tmp_path / "WV3_data" / "train128"
    _make_folder(root)
    r = FolderReader(root, "wv3")
    assert r.sensor.name == "WV3_RGBN" and r.max_value == 255 and len(r) == 3
    s = r.read(1)
    gt = tifffile.imread(root / "ms" / "1.tif").astype(np.float64)
    np.testing.assert_array_equal(s["gt"], gt.astype(np.float32))
    np.testing.assert_allclose(
        s["ms"], imresize_bicubic(gt, 0.25), rtol=1e-5, atol=1e-3
    )
    assert s["ms"].shape == (8, 8, 4) and s["lms"].shape == (32, 32, 4)
    assert FolderReader(root, "gf2", lms="bicubic").read(0)["lms"].shape == (32, 32, 4)
    assert isinstance(open_source(root, sensor="wv2"), FolderReader)


def test_folder_reader_errors(tmp_path):
    root = tmp_path / "a"
    _make_folder(root)
    (root / "pan" / "2.tif").unlink()
    with pytest.raises(DataFormatError, match=r"unpaired: \['2.tif'\]"):
        FolderReader(root, "gf2")
    with pytest.raises(DataFormatError, match="missing sub-folder 'ms'"):
        FolderReader(tmp_path, "gf2")
    three = tmp_path / "b"
    _make_folder(three, bands=3)
    with pytest.raises(DataFormatError, match="has 3 bands but sensor GF2 has 4"):
        FolderReader(three, "gf2")


def test_open_source_dispatch(tmp_path):
    h5 = tmp_path / "d.h5"
    _write_h5(h5)
    assert isinstance(open_source(h5, sensor="gf2"), PanCollectionReader)
    arr = open_source(
        {"ms": np.ones((1, 4, 4, 4)), "pan": np.ones((1, 16, 16))}, sensor="gf2"
    )
    assert isinstance(arr, ArrayReader)
    assert open_source(arr) is arr
    with pytest.raises(DataFormatError, match="expected keys 'ms', 'pan'"):
        open_source({"ms": np.ones((1, 4, 4, 4))}, sensor="gf2")
    with pytest.raises(DataFormatError, match="file not found"):
        open_source(tmp_path / "missing.h5", sensor="gf2")
    with pytest.raises(DataFormatError, match="unsupported data source"):
        open_source(_touch(tmp_path / "x.txt"), sensor="gf2")
    with pytest.raises(TypeError):
        open_source(42)
    assert get_sensor("gf2").num_bands == 4


# ---------------------------------------------------------------------------
# Band files: an MS delivered as one file per band (group)
# ---------------------------------------------------------------------------


def test_read_scene_stacks_band_files(tmp_path):
    rng = np.random.default_rng(3)
    ms = rng.integers(0, 2047, (8, 8, 4), dtype=np.uint16)
    pan = rng.integers(0, 2047, (32, 32), dtype=np.uint16)
    gt = rng.integers(0, 2047, (32, 32, 4), dtype=np.uint16)
    files = []
    for b in range(4):  # one 2-D file per band
        files.append(tmp_path / f"b{b}.tif")
        tifffile.imwrite(files[-1], ms[..., b])
    halves = [tmp_path / "g14.tif", tmp_path / "g58.tif"]  # two band groups
    tifffile.imwrite(
        halves[0], gt[..., :2], photometric="minisblack", planarconfig="contig"
    )
    tifffile.imwrite(
        halves[1], gt[..., 2:], photometric="minisblack", planarconfig="contig"
    )
    tifffile.imwrite(tmp_path / "pan.tif", pan)
    scene = read_scene(files, tmp_path / "pan.tif", gt=halves, sensor="qb")
    np.testing.assert_array_equal(scene.ms, ms)
    np.testing.assert_array_equal(scene.gt, gt)
    assert "b0.tif + " in scene.source
    # Band files must agree in size and dtype; the message names both files.
    tifffile.imwrite(tmp_path / "small.tif", ms[:4, :4, 0])
    with pytest.raises(DataFormatError, match="small.tif: ms band file of size"):
        read_scene(
            [*files[:3], tmp_path / "small.tif"], tmp_path / "pan.tif", sensor="qb"
        )
    tifffile.imwrite(tmp_path / "float.tif", ms[..., 0].astype(np.float32))
    with pytest.raises(DataFormatError, match="float.tif: ms band file of dtype"):
        read_scene(
            [*files[:3], tmp_path / "float.tif"], tmp_path / "pan.tif", sensor="qb"
        )
    with pytest.raises(DataFormatError, match="has 3 bands"):
        read_scene(files[:3], tmp_path / "pan.tif", sensor="qb")


def test_tiff_compression_without_codec_is_read_through_gdal(tmp_path, monkeypatch):
    rasterio = pytest.importorskip("rasterio")
    arr = np.random.default_rng(4).integers(0, 2047, (3, 16, 16), dtype=np.uint16)
    path = tmp_path / "lzw.tif"
    profile = dict(driver="GTiff", width=16, height=16, count=3, dtype="uint16")
    profile["transform"] = rasterio.Affine(1, 0, 0, 0, -1, 16)
    with rasterio.open(path, "w", compress="lzw", **profile) as dst:
        dst.write(arr)
    # tifffile needs imagecodecs for LZW; whether it is installed or not, the
    # file reads (through GDAL when tifffile cannot decode it).
    np.testing.assert_array_equal(read_image(path), np.moveaxis(arr, 0, -1))

    def no_codec(*args, **kwargs):
        raise ValueError("<COMPRESSION.LZW: 5> requires the 'imagecodecs' package")

    monkeypatch.setattr(tifffile.TiffPage, "asarray", no_codec)
    np.testing.assert_array_equal(read_image(path), np.moveaxis(arr, 0, -1))
    monkeypatch.setitem(__import__("sys").modules, "rasterio", None)
    with pytest.raises(DataFormatError, match="install rasterio"):
        read_image(path)
