"""Tests for the built-in synthetic data (keras_pansharp.data.synthetic)."""

import threading

import numpy as np
import pytest

from keras_pansharp.data import PanCollectionReader, synthetic
from keras_pansharp.sensors import get_sensor

TINY = dict(
    train_scene_size=128,
    train_patch=16,
    train_stride=16,
    valid_scene_size=128,
    valid_patch=16,
    valid_stride=16,
    test_size=32,
    test_images=2,
)


@pytest.mark.parametrize("name", ["wv2", "wv3", "gf2"])
def test_scene_matches_sensor(name):
    sensor = get_sensor(name)
    scene, truth = synthetic.make_scene(name, size=128, seed=3, return_truth=True)
    assert scene.ms.shape == (32, 32, sensor.num_bands)
    assert scene.pan.shape == (128, 128)
    assert truth.shape == (128, 128, sensor.num_bands)
    for img in (scene.ms, scene.pan):
        assert img.min() >= 0 and img.max() <= sensor.max_value
        np.testing.assert_array_equal(img, np.round(img))  # quantised DN
    # uses a good part of the dynamic range but does not saturate
    assert 0.2 * sensor.max_value < scene.ms.max() <= sensor.max_value
    assert scene.sensor is sensor


def test_deterministic_and_seed_dependent():
    a = synthetic.make_scene("wv3", size=64, seed=1)
    b = synthetic.make_scene("wv3", size=64, seed=1)
    c = synthetic.make_scene("wv3", size=64, seed=2)
    np.testing.assert_array_equal(a.ms, b.ms)
    np.testing.assert_array_equal(a.pan, b.pan)
    assert not np.array_equal(a.pan, c.pan)


def test_scene_has_structure_not_noise():
    scene, truth = synthetic.make_scene("wv3", size=256, seed=0, return_truth=True)
    pan = scene.pan - scene.pan.mean()
    # strong spatial correlation between neighbouring pixels (white noise: ~0)
    corr = np.corrcoef(pan[:, :-1].ravel(), pan[:, 1:].ravel())[0, 1]
    assert corr > 0.6
    # several land-cover classes present, with distinct spectra
    cover = synthetic.land_cover(256, 0)
    present = np.unique(cover["classes"])
    assert len(present) >= 6
    # vegetation: NIR1 much brighter than red; water: NIR darker than blue
    cls = cover["classes"]
    veg = np.isin(cls, [1, 2, 3])
    assert truth[veg][:, 6].mean() > 2 * truth[veg][:, 4].mean()
    if (cls == 0).any():
        assert truth[cls == 0][:, 6].mean() < truth[cls == 0][:, 1].mean()
    # PAN is (a blurred, noisy) weighted sum of the bands: it correlates with
    # the band average seen at MS scale
    pan_lr = scene.pan.reshape(64, 4, 64, 4).mean(axis=(1, 3))
    assert np.corrcoef(pan_lr.ravel(), scene.ms.mean(-1).ravel())[0, 1] > 0.9


def test_mtf_decimate_matches_toolbox_filter():
    from keras_pansharp.signal import mtf_filter

    _, truth = synthetic.make_scene("wv2", size=64, seed=0, return_truth=True)
    ref = mtf_filter(truth.astype(np.float64), "wv2")[2::4, 2::4]
    got = synthetic._mtf_decimate(truth, get_sensor("wv2"))
    np.testing.assert_allclose(got, ref, atol=0.05)


def test_bad_arguments():
    with pytest.raises(ValueError, match="multiple of 4"):
        synthetic.make_scene("wv3", size=30)
    with pytest.raises(TypeError, match="Unknown settings"):
        synthetic.ensure_datasets(root="unused", bogus=1)
    with pytest.raises(ValueError, match="exceeds the MS side"):
        synthetic.ensure_datasets(root="unused", train_scene_size=64, train_patch=32)


def test_ensure_datasets_builds_once(tmp_path):
    paths = synthetic.ensure_datasets(("wv3", "gf2"), root=tmp_path, **TINY)
    assert set(paths) == {"train", "valid", "test_rr", "test_fr"}
    for split, per_sensor in paths.items():
        assert set(per_sensor) == {"wv3", "gf2"}
        for name, path in per_sensor.items():
            r = PanCollectionReader(path)  # sensor from the file attribute
            assert r.sensor.name == get_sensor(name).name
            assert r.has_gt == (split != "test_fr")
            size = 32 if split.startswith("test") else 16
            assert r.pan_size == (size, size)
            sample = r.read(0)
            assert sample["ms"].shape[-1] == get_sensor(name).num_bands
            assert sample["pan"].max() <= get_sensor(name).max_value
    assert len(PanCollectionReader(paths["train"]["wv3"])) == 4  # MS 32 / 16
    assert len(PanCollectionReader(paths["test_rr"]["gf2"])) == 2
    assert len(PanCollectionReader(paths["test_fr"]["gf2"])) == 2
    mtimes = {p: p.stat().st_mtime_ns for d in paths.values() for p in d.values()}
    again = synthetic.ensure_datasets(("wv3", "gf2"), root=tmp_path, **TINY)
    assert again == paths
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes  # reused
    # no temporary files left behind
    assert not [p for p in tmp_path.rglob("*") if ".tmp-" in p.name]


def test_rr_files_follow_wald(tmp_path):
    from keras_pansharp.signal import interp23tap

    paths = synthetic.ensure_datasets(("gf2",), root=tmp_path, **TINY)
    s = PanCollectionReader(paths["test_rr"]["gf2"]).read(0)
    # lms is interp23tap of ms (whole-scene interpolation, check the centre)
    up = interp23tap(s["ms"].astype(np.float64))
    np.testing.assert_allclose(s["lms"][2::4, 2::4], s["ms"], rtol=1e-5, atol=1e-2)
    assert np.abs(s["lms"] - up)[8:-8, 8:-8].mean() < 0.05 * s["ms"].mean()


def test_home_env_and_concurrent_builders(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_PANSHARP_HOME", str(tmp_path / "home"))
    assert synthetic.default_home() == tmp_path / "home"
    results, errors = [], []

    def build():
        try:
            results.append(synthetic.ensure_datasets(("gf2",), **TINY))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=build) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results[0] == results[1]
    p = results[0]["train"]["gf2"]
    assert str(p).startswith(str(tmp_path / "home"))
    assert len(PanCollectionReader(p)) == 4
