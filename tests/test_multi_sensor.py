"""Tests for MultiSensorDataset."""

import collections

import keras
import numpy as np
import pytest

from keras_pansharp.data import ArrayReader, MultiSensorDataset, synthetic
from keras_pansharp.sensors import generic_sensor, get_sensor


def _blocky(n, h, bands, sensor, seed):
    """Samples where gt = kron(ms, 4x4 ones), pan = gt[..., :1], lms = gt.

    Any flip/rotation applied identically keeps these relations, and every
    sample is tagged by its index in its NIR band (the last band served in
    bands="rgbn"): ms[..., nir] == index + 1 everywhere.
    """
    rng = np.random.default_rng(seed)
    ms = rng.integers(1, 100, (n, h, h, bands)).astype(np.float64)
    ms[..., get_sensor(sensor).rgbn_indices[-1]] = np.arange(1, n + 1)[:, None, None]
    ms[..., 0] = ms[..., get_sensor(sensor).rgbn_indices[0]]  # pan = first band
    gt = np.kron(ms, np.ones((1, 4, 4, 1)))
    return ArrayReader(ms, gt[..., 0], sensor, gt=gt, lms=gt, max_value=1000.0)


def _check_blocky(x, y):
    ms = x["ms"]
    np.testing.assert_array_equal(y, np.kron(ms, np.ones((1, 4, 4, 1), np.float32)))
    np.testing.assert_array_equal(x["pan"], y[..., :1])
    np.testing.assert_array_equal(x["lms"], y)


def _ids(x):
    """Sample tags (see `_blocky`) of a batch."""
    return np.round(x["ms"][:, 0, 0, -1] * 1000).astype(int) - 1


def test_shapes_dtypes_normalisation_rgbn():
    # 8-band sensor: band b holds (b + 1) * 100 DN -> rgbn picks bands 1, 2, 4, 6
    wv3 = {
        "ms": np.broadcast_to(np.arange(1, 9) * 100.0, (3, 4, 4, 8)).copy(),
        "pan": np.full((3, 16, 16), 500.0),
        "gt": np.broadcast_to(np.arange(1, 9) * 100.0, (3, 16, 16, 8)).copy(),
    }
    gf2 = {
        "ms": np.full((2, 4, 4, 4), 1023.0),
        "pan": np.full((2, 16, 16), 1023.0),
        "gt": np.full((2, 16, 16, 4), 511.5),
    }
    ds = MultiSensorDataset({"wv3": wv3, "gf2": gf2}, batch_size=4, seed=0)
    assert len(ds) == ds.num_batches == 2  # ceil(5 / 4)
    assert ds.sensors["wv3"].name == "WV3_RGBN" and ds.sensors["gf2"].name == "GF2"
    for i in range(len(ds)):
        x, y = ds[i]
        assert set(x) == {"ms", "pan", "lms"}
        assert x["ms"].shape == (4, 4, 4, 4) and x["pan"].shape == (4, 16, 16, 1)
        assert x["lms"].shape == y.shape == (4, 16, 16, 4)
        assert all(a.dtype == np.float32 for a in (*x.values(), y))
        for k, src in enumerate(ds.batch_sources(i)):
            if src == "wv3":
                want = np.array([200, 300, 500, 700]) / 2047
                np.testing.assert_allclose(y[k, 0, 0], want, rtol=1e-6)
                np.testing.assert_allclose(x["pan"][k], 500 / 2047, rtol=1e-6)
            else:
                np.testing.assert_allclose(y[k], 0.5, rtol=1e-6)
                np.testing.assert_allclose(x["ms"][k], 1.0, rtol=1e-6)


def test_augment_and_crop_identical_across_inputs():
    ds = MultiSensorDataset(
        {"a": _blocky(6, 6, 4, "gf2", 0)}, batch_size=3, patch_size=16, seed=1
    )
    plain = MultiSensorDataset.for_evaluation(
        {"a": _blocky(6, 6, 4, "gf2", 0)}, batch_size=6
    )
    originals = plain[0][1]  # full 24x24 samples, no augmentation
    n_changed = 0
    for epoch in range(3):
        for i in range(len(ds)):
            x, y = ds.get_batch(i, epoch)
            assert y.shape == (3, 16, 16, 4)
            _check_blocky(x, y)
            for k, idx in enumerate(_ids(x)):
                crops = [
                    originals[idx, t : t + 16, s : s + 16]
                    for t in (0, 4, 8)
                    for s in (0, 4, 8)
                ]
                same = any(np.array_equal(y[k], c) for c in crops)
                n_changed += not same
    assert n_changed > 0  # flips/rotations happened
    # without augmentation every sample is an aligned crop of the original
    ds_na = MultiSensorDataset(
        {"a": _blocky(6, 6, 4, "gf2", 0)},
        batch_size=3,
        patch_size=16,
        seed=1,
        augment=False,
    )
    for i in range(len(ds_na)):
        x, y = ds_na[i]
        for k, idx in enumerate(_ids(x)):
            assert any(
                np.array_equal(y[k], originals[idx, t : t + 16, s : s + 16])
                for t in (0, 4, 8)
                for s in (0, 4, 8)
            )


def test_seed_determinism():
    def make(seed):
        return MultiSensorDataset(
            {"a": _blocky(5, 4, 4, "gf2", 0), "b": _blocky(3, 4, 8, "wv2", 1)},
            batch_size=4,
            patch_size=8,
            seed=seed,
            steps_per_epoch=4,
        )

    d1, d2, d3 = make(7), make(7), make(8)
    order = [3, 0, 2, 1]  # out-of-order access (as with several workers)
    b1 = {i: d1.get_batch(i, 1) for i in order}
    for i in range(len(d2)):
        x2, y2 = d2.get_batch(i, 1)
        np.testing.assert_array_equal(b1[i][1], y2)
        for k in x2:
            np.testing.assert_array_equal(b1[i][0][k], x2[k])
    assert not all(
        np.array_equal(d1.get_batch(i, 0)[1], d3.get_batch(i, 0)[1])
        for i in range(len(d1))
    )
    # epochs differ
    assert not all(
        np.array_equal(d1.get_batch(i, 0)[1], d1.get_batch(i, 1)[1])
        for i in range(len(d1))
    )
    # on_epoch_end advances the epoch used by __getitem__
    d2.on_epoch_end()
    np.testing.assert_array_equal(d2[0][1], b1[0][1])


def _count_sources(ds, epoch=0):
    counts = collections.Counter()
    for i in range(len(ds)):
        counts.update(ds.batch_sources(i, epoch))
    return counts


def test_balance_modes():
    sources = lambda: {  # noqa: E731
        "big": _blocky(30, 2, 4, "gf2", 0),
        "small": _blocky(6, 2, 4, "qb", 1),
    }
    eq = MultiSensorDataset(sources(), batch_size=4, seed=0)
    assert len(eq) == 9  # ceil(36 / 4)
    assert _count_sources(eq) == {"big": 18, "small": 18}
    prop = MultiSensorDataset(sources(), batch_size=4, seed=0, balance="proportional")
    assert _count_sources(prop) == {"big": 30, "small": 6}
    w = MultiSensorDataset(
        sources(),
        batch_size=4,
        seed=0,
        balance={"big": 3, "small": 1},
        steps_per_epoch=5,
    )
    assert len(w) == 5 and _count_sources(w) == {"big": 15, "small": 5}
    with pytest.raises(ValueError, match="not sources"):
        MultiSensorDataset(sources(), balance={"nope": 1})
    with pytest.raises(ValueError, match="balance must be"):
        MultiSensorDataset(sources(), balance="random")


def test_epoch_walks_every_sample_before_repeating():
    big = _blocky(30, 2, 4, "gf2", 0)
    small = _blocky(6, 2, 4, "qb", 1)
    # proportional + default steps: one epoch is one pass over every sample
    prop = MultiSensorDataset(
        {"big": big, "small": small}, batch_size=4, seed=3, balance="proportional"
    )
    seen = collections.defaultdict(list)
    for i in range(len(prop)):
        x, _ = prop[i]
        for src, idx in zip(prop.batch_sources(i), _ids(x)):
            seen[src].append(idx)
    assert sorted(seen["big"]) == list(range(30))
    assert sorted(seen["small"]) == list(range(6))
    # equal balance: "big" is spread over epochs (15+3 per epoch) without
    # repeats inside its pass; "small" is revisited three times per epoch
    eq = MultiSensorDataset({"big": big, "small": small}, batch_size=4, seed=3)
    stream = []
    for epoch in range(2):
        for i in range(len(eq)):
            x, _ = eq.get_batch(i, epoch)
            stream += [
                idx for s, idx in zip(eq.batch_sources(i, epoch), _ids(x)) if s == "big"
            ]
    assert len(stream) == 36
    assert len(set(stream[:18])) == 18  # epoch 0: no repeats
    assert set(stream) == set(range(30))  # all seen within two epochs


def test_native_bands_single_sensor_batches():
    ds = MultiSensorDataset(
        {"wv3": _blocky(8, 4, 8, "wv3", 0), "gf2": _blocky(4, 4, 4, "gf2", 1)},
        batch_size=2,
        patch_size=8,
        bands="native",
        seed=0,
        steps_per_epoch=6,
    )
    per_sensor = collections.Counter()
    for i in range(len(ds)):
        x, y = ds[i]
        sensor = ds.batch_sensor(i)
        per_sensor[sensor.name] += 1
        assert len(set(ds.batch_sources(i))) == 1
        assert y.shape == (2, 8, 8, sensor.num_bands)
        assert x["ms"].shape == (2, 2, 2, sensor.num_bands)
        _check_blocky(x, y)
    assert per_sensor == {"WV3": 3, "GF2": 3}
    # rgbn batches mix sensors: batch_sensor refuses
    mixed = MultiSensorDataset(
        {"wv3": _blocky(8, 4, 8, "wv3", 0), "gf2": _blocky(8, 4, 4, "gf2", 1)},
        batch_size=8,
        seed=0,
    )
    assert any(len(set(mixed.batch_sources(i))) == 2 for i in range(len(mixed)))
    with pytest.raises(ValueError, match="mixes sensors"):
        for i in range(len(mixed)):
            mixed.batch_sensor(i)


def test_evaluation_variant_and_arrays():
    src = {"wv3": _blocky(5, 6, 8, "wv3", 0), "gf2": _blocky(3, 6, 4, "gf2", 1)}
    ev = MultiSensorDataset.for_evaluation(src, batch_size=3, patch_size=16)
    assert len(ev) == 3  # 8 samples -> 3 + 3 + 2
    ids, shapes = [], []
    for i in range(len(ev)):
        x, y = ev[i]
        shapes.append(y.shape[0])
        _check_blocky(x, y)
        ids += list(zip(ev.batch_sources(i), _ids(x)))
    assert shapes == [3, 3, 2]
    assert ids == [("wv3", i) for i in range(5)] + [("gf2", i) for i in range(3)]
    # centred, aligned crop: rows 4..20 of the 24-pixel samples
    full = MultiSensorDataset.for_evaluation(src, batch_size=8)[0][1]
    np.testing.assert_array_equal(ev[0][1][0], full[0, 4:20, 4:20])
    arrays = ev.evaluation_data()
    assert set(arrays) == {"wv3_rgbn", "gf2"}
    inputs, gt = arrays["wv3_rgbn"]
    assert gt.shape == (5, 16, 16, 4) and inputs["ms"].shape == (5, 4, 4, 4)
    assert get_sensor("wv3_rgbn").num_bands == 4
    assert arrays["gf2"][1].shape == (3, 16, 16, 4)
    assert ev.evaluation_data(max_samples=2)["gf2"][1].shape[0] == 2
    with pytest.raises(ValueError, match="does not augment"):
        MultiSensorDataset(src, training=False, augment=True)
    with pytest.raises(ValueError, match="steps_per_epoch applies"):
        MultiSensorDataset.for_evaluation(src, steps_per_epoch=3)


def test_full_resolution_sources():
    fr = {"ms": np.ones((2, 4, 4, 4)), "pan": np.ones((2, 16, 16))}
    ev = MultiSensorDataset.for_evaluation({"gf2": fr}, batch_size=2)
    x = ev[0]
    assert isinstance(x, dict) and x["pan"].shape == (2, 16, 16, 1)
    assert set(ev.evaluation_data()["gf2"]) == {"ms", "pan", "lms"}
    with pytest.raises(ValueError, match="have no 'gt'"):
        MultiSensorDataset({"gf2": fr})
    rr = {**fr, "gt": np.ones((2, 16, 16, 4))}
    with pytest.raises(ValueError, match="mix reduced-resolution"):
        MultiSensorDataset.for_evaluation({"gf2": fr, "qb": rr})


def test_argument_errors():
    a = _blocky(2, 4, 4, "gf2", 0)
    b = _blocky(2, 8, 4, "qb", 0)
    with pytest.raises(ValueError, match="different sizes"):
        MultiSensorDataset({"gf2": a, "qb": b})
    assert MultiSensorDataset({"gf2": a, "qb": b}, patch_size=16).patch_size == 16
    with pytest.raises(ValueError, match="multiple of 4"):
        MultiSensorDataset({"gf2": a}, patch_size=10)
    with pytest.raises(ValueError, match="larger than the samples"):
        MultiSensorDataset({"gf2": a}, patch_size=32)
    with pytest.raises(ValueError, match="bands must be"):
        MultiSensorDataset({"gf2": a}, bands="rgb")
    with pytest.raises(ValueError, match="non-empty dict"):
        MultiSensorDataset({})
    three = ArrayReader(np.ones((1, 4, 4, 3)), np.ones((1, 16, 16)), generic_sensor(3))
    with pytest.raises(ValueError, match="needs at least 4"):
        MultiSensorDataset({"x": three})


def test_lists_of_sources_and_paths(tmp_path):
    paths = synthetic.ensure_datasets(
        ("gf2", "wv2"),
        root=tmp_path,
        train_scene_size=128,
        train_patch=16,
        train_stride=16,
        valid_scene_size=128,
        valid_patch=16,
        valid_stride=16,
        test_size=32,
        test_images=2,
    )
    ds = MultiSensorDataset(
        {
            "gf2": [paths["train"]["gf2"], paths["valid"]["gf2"]],
            "wv2": paths["train"]["wv2"],
        },
        batch_size=4,
        seed=0,
    )
    assert ds.num_samples == {"gf2": 8, "wv2": 4}
    x, y = ds[0]
    assert y.shape == (4, 16, 16, 4) and float(y.max()) <= 1.0
    test = MultiSensorDataset.for_evaluation(paths["test_rr"], batch_size=2)
    assert set(test.evaluation_data()) == {"gf2", "wv2_rgbn"}


def test_as_tf_dataset_matches_batches():
    ds = MultiSensorDataset(
        {"a": _blocky(4, 4, 4, "gf2", 0), "b": _blocky(4, 4, 8, "wv2", 1)},
        batch_size=2,
        patch_size=8,
        seed=0,
    )
    tfds = ds.as_tf_dataset(prefetch=2)
    spec = tfds.element_spec
    assert tuple(spec[0]["ms"].shape) == (2, 2, 2, 4)
    assert tuple(spec[1].shape) == (2, 8, 8, 4)
    for epoch in range(2):  # each iteration is the next epoch
        got = list(tfds)
        assert len(got) == len(ds)
        for i, (x, y) in enumerate(got):
            want = ds.get_batch(i, epoch)
            np.testing.assert_array_equal(y.numpy(), want[1])
            np.testing.assert_array_equal(x["pan"].numpy(), want[0]["pan"])


def test_fit_simple_model_with_workers():
    """model.fit consumes the dataset (threads) on the current backend."""
    ds = MultiSensorDataset(
        {"a": _blocky(4, 4, 4, "gf2", 0), "b": _blocky(4, 4, 8, "wv2", 1)},
        batch_size=2,
        patch_size=8,
        seed=0,
        steps_per_epoch=3,
        workers=2,
    )
    ms = keras.Input((2, 2, 4), name="ms")
    pan = keras.Input((8, 8, 1), name="pan")
    lms = keras.Input((8, 8, 4), name="lms")
    out = keras.layers.Add()(
        [
            lms,
            keras.layers.Conv2D(4, 3, padding="same")(
                keras.layers.Concatenate()([lms, pan])
            ),
        ]
    )
    model = keras.Model({"ms": ms, "pan": pan, "lms": lms}, out)
    model.compile(optimizer="adam", loss="mae")
    val = MultiSensorDataset.for_evaluation(
        {"a": _blocky(3, 4, 4, "gf2", 2), "b": _blocky(2, 4, 8, "wv2", 3)},
        batch_size=2,
        patch_size=8,
    )  # 3 batches: 2 + 2 + 1 (the last one smaller)
    hist = model.fit(ds, validation_data=val, epochs=2, verbose=0)
    assert len(hist.history["loss"]) == 2
    assert np.isfinite(hist.history["val_loss"]).all()
    assert np.isfinite(hist.history["loss"]).all()
    assert ds.epoch >= 2  # Keras calls on_epoch_end after every epoch


@pytest.fixture(scope="module")
def three_sensor_files(tmp_path_factory):
    return synthetic.ensure_datasets(
        ("wv2", "wv3", "gf2"),
        root=tmp_path_factory.mktemp("kp_home"),
        train_scene_size=256,
        train_patch=32,
        train_stride=16,
        valid_scene_size=128,
        valid_patch=32,
        valid_stride=32,
        test_size=32,
        test_images=2,
    )


@pytest.mark.slow  # PanTiny construction + compilation; data path: test_fit_simple_*
def test_fit_pantiny_on_three_synthetic_sensors(three_sensor_files):
    """The paper's setting: one PanTiny trained on WV2 + WV3 + GF2 at once."""
    import keras_pansharp

    paths = three_sensor_files
    ds = MultiSensorDataset(
        paths["train"], batch_size=3, patch_size=32, seed=0, steps_per_epoch=2
    )
    x, y = ds[0]
    assert x["lms"].shape == (3, 32, 32, 4)
    assert y.shape == (3, 32, 32, 4)
    model = keras_pansharp.PanTiny()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mae")
    before = [np.array(w) for w in model.trainable_weights[:3]]
    hist = model.fit(ds, epochs=1, verbose=0)
    assert np.isfinite(hist.history["loss"][0])
    after = [np.array(w) for w in model.trainable_weights[:3]]
    assert any(not np.allclose(a, b) for a, b in zip(before, after))
