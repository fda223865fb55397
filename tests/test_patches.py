"""Tests for the Wald's-protocol patch maker and its CLI."""

import h5py
import numpy as np
import pytest
import tifffile

from keras_pansharp.data import (
    DataFormatError,
    MultiSensorDataset,
    PanCollectionReader,
    make_training_set,
    synthetic,
)
from keras_pansharp.data.prepare import main as prepare_main
from keras_pansharp.signal import interp23tap, wald_degrade


@pytest.fixture(scope="module")
def scene():
    return synthetic.make_scene("gf2", size=128, seed=5)  # MS 32x32, PAN 128


def test_round_trip_wald(tmp_path, scene):
    out = tmp_path / "train.h5"
    res = make_training_set(
        scene.ms, scene.pan, "gf2", patch_size=16, stride=8, out=out
    )
    assert res == {"rr": out, "rr_samples": 9}  # (32 - 16) / 8 + 1 = 3 per side
    r = PanCollectionReader(out)  # sensor stored in the file
    assert r.sensor.name == "GF2" and r.has_gt and len(r) == 9
    with h5py.File(out, "r") as f:
        assert f["gt"].shape == (9, 4, 16, 16)
        assert f["ms"].shape == (9, 4, 4, 4)
        assert f["pan"].shape == (9, 1, 16, 16)
        assert f["lms"].shape == (9, 4, 16, 16)
        assert f.attrs["protocol"] == "wald_rr"
    ms_lr, pan_lr = wald_degrade(scene.ms, scene.pan, "gf2")
    lms = interp23tap(ms_lr)
    # patch 4 is the one at (row 8, col 8) of the grid
    s = r.read(4)
    np.testing.assert_allclose(s["gt"], scene.ms[8:24, 8:24], rtol=1e-6)
    np.testing.assert_allclose(s["ms"], ms_lr[2:6, 2:6], rtol=1e-5)
    np.testing.assert_allclose(s["pan"][..., 0], pan_lr[8:24, 8:24], rtol=1e-5)
    np.testing.assert_allclose(s["lms"], lms[8:24, 8:24], rtol=1e-5, atol=1e-3)
    # ... and feeds MultiSensorDataset
    ds = MultiSensorDataset({"gf2": out}, batch_size=3, patch_size=16, seed=0)
    x, y = ds[0]
    assert x["ms"].shape == (3, 4, 4, 4) and y.shape == (3, 16, 16, 4)
    assert 0 < y.max() <= 1.0


def test_refuses_to_overwrite_and_is_atomic(tmp_path, scene):
    out = tmp_path / "t.h5"
    make_training_set(scene.ms, scene.pan, "gf2", patch_size=16, out=out)
    before = out.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        make_training_set(scene.ms, scene.pan, "gf2", patch_size=16, out=out)
    assert out.read_bytes() == before
    make_training_set(scene.ms, scene.pan, "gf2", patch_size=8, out=out, overwrite=True)
    assert PanCollectionReader(out).pan_size == (8, 8)
    # a failure while writing leaves neither a partial output nor temp files
    bad = scene.pan.copy()
    bad[0, 0] = np.nan
    with pytest.raises(DataFormatError, match="NaN/inf"):
        make_training_set(scene.ms, bad, "gf2", patch_size=16, out=tmp_path / "n.h5")
    assert not (tmp_path / "n.h5").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.h5"]


def test_fr_output_and_files(tmp_path, scene):
    tifffile.imwrite(tmp_path / "ms.tif", scene.ms.astype(np.uint16))
    tifffile.imwrite(tmp_path / "pan.tif", scene.pan.astype(np.uint16))
    res = make_training_set(
        tmp_path / "ms.tif",
        tmp_path / "pan.tif",
        "gf2",
        patch_size=32,
        out=tmp_path / "rr.h5",
        fr_out=tmp_path / "fr.h5",
    )
    assert res["rr_samples"] == 1 and res["fr_samples"] == 16
    fr = PanCollectionReader(res["fr"])
    assert not fr.has_gt and fr.pan_size == (32, 32)
    s = fr.read(5)  # grid (row 32, col 32) at PAN scale
    np.testing.assert_array_equal(s["pan"][..., 0], scene.pan[32:64, 32:64])
    np.testing.assert_array_equal(s["ms"], scene.ms[8:16, 8:16])
    np.testing.assert_allclose(
        s["lms"], interp23tap(scene.ms)[32:64, 32:64], rtol=1e-5, atol=1e-3
    )
    ev = MultiSensorDataset.for_evaluation({"gf2": res["fr"]}, batch_size=8)
    assert set(ev[0]) == {"ms", "pan", "lms"}  # FR: inputs only


def test_bad_geometry(tmp_path, scene):
    with pytest.raises(ValueError, match="patch_size must be a positive multiple of 4"):
        make_training_set(
            scene.ms, scene.pan, "gf2", patch_size=18, out=tmp_path / "a.h5"
        )
    with pytest.raises(ValueError, match="smaller than one patch"):
        make_training_set(
            scene.ms, scene.pan, "gf2", patch_size=64, out=tmp_path / "a.h5"
        )
    with pytest.raises(DataFormatError, match="has 4 bands but sensor WV3 has 8"):
        make_training_set(scene.ms, scene.pan, "wv3", out=tmp_path / "a.h5")
    with pytest.raises(ValueError, match="sensor"):
        make_training_set(scene.ms, scene.pan, None, out=tmp_path / "a.h5")
    assert not list(tmp_path.iterdir())


def test_cli(tmp_path, scene, capsys):
    tifffile.imwrite(tmp_path / "ms.tif", scene.ms.astype(np.uint16))
    tifffile.imwrite(tmp_path / "pan.tif", scene.pan.astype(np.uint16))
    args = ["--ms", str(tmp_path / "ms.tif"), "--pan", str(tmp_path / "pan.tif")]
    args += ["--sensor", "GF2", "--out", str(tmp_path / "o.h5"), "--patch-size", "16"]
    assert prepare_main(args) == 0
    out = capsys.readouterr().out
    assert "wrote 4 RR patches" in out and "4/4" in out  # Progbar reached the end
    assert len(PanCollectionReader(tmp_path / "o.h5")) == 4
    assert prepare_main(args) == 2  # exists
    assert "exists" in capsys.readouterr().err
    assert prepare_main(args + ["--overwrite", "--stride", "8"]) == 0
    assert len(PanCollectionReader(tmp_path / "o.h5")) == 9
    bad = ["--ms", str(tmp_path / "ms.tif"), "--pan", str(tmp_path / "ms.tif")]
    assert prepare_main(bad + ["--sensor", "GF2", "--out", str(tmp_path / "x.h5")]) == 2
    assert "single-band PAN" in capsys.readouterr().err


@pytest.mark.large
def test_shared_scene_to_training_set(shared_data_dir, tmp_path):
    d = shared_data_dir / "qb_abfnet"
    res = make_training_set(
        d / "fr_ms.tif", d / "fr_pan.tif", "qb", patch_size=64, out=tmp_path / "qb.h5"
    )
    assert res["rr_samples"] == 16
    r = PanCollectionReader(res["rr"])
    assert r.sensor.name == "QB" and r.read(0)["gt"].max() > 100
