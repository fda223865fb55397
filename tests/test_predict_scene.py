"""predict_scene: tiled prediction (exact multi-pass or blending) equals untiled."""

import keras
import numpy as np
import pytest

from keras_pansharp.inference import (
    blend_weights,
    core_tiles,
    global_statistics_layers,
    receptive_radius,
    tile_starts,
)
from keras_pansharp.layers.transformer import (
    ChannelAttention,
    GlobalStatisticsCollected,
)
from keras_pansharp.models.pantiny import PanTiny
from keras_pansharp.models.pnn import PNN
from keras_pansharp.scene import predict_scene


def _scene(rng, h=32, w=24, bands=4):
    ms = rng.random((h, w, bands)).astype("float32")
    pan = rng.random((4 * h, 4 * w)).astype("float32")
    return ms, pan


@pytest.mark.parametrize(
    "size,tile,overlap", [(128, 64, 32), (100, 48, 16), (40, 64, 8)]
)
def test_blend_weights_partition_of_unity(size, tile, overlap):
    starts, weights = blend_weights(size, tile, overlap)
    assert starts[0] == 0 and starts[-1] + min(tile, size) == size
    total = np.zeros(size)
    for s, wt in zip(starts, weights):
        total[s : s + len(wt)] += wt
    np.testing.assert_allclose(total, 1.0, atol=1e-12)
    assert tile_starts(size, tile, overlap) == starts


def test_tiled_equals_untiled_for_convnet(rng):
    # PNN: receptive-field radius 8 PAN pixels <= overlap // 4.
    model = PNN(bands=4)
    ms, pan = _scene(rng)
    full = model.predict({"ms": ms[None], "pan": pan[None, ..., None]}, verbose=0)[0]
    tiled = predict_scene(model, ms, pan, tile=64, overlap=32, batch_size=4, verbose=0)
    assert tiled.shape == full.shape and tiled.dtype == np.float32
    np.testing.assert_allclose(tiled, full, atol=1e-4)
    assert np.abs(tiled - full).max() < 1e-5


def test_dn_input_and_memmap_output(rng, tmp_path):
    model = PNN(bands=4)
    ms, pan = _scene(rng, 24, 20)
    max_value = 1023.0
    ms_dn = np.round(ms * max_value).astype(np.uint16)
    pan_dn = np.round(pan * max_value).astype(np.uint16)[..., None]
    ref = model.predict(
        {
            "ms": (ms_dn / max_value)[None].astype("float32"),
            "pan": (pan_dn / max_value)[None].astype("float32"),
        },
        verbose=0,
    )[0]
    out = np.lib.format.open_memmap(
        tmp_path / "fused.npy", mode="w+", dtype=np.float32, shape=(96, 80, 4)
    )
    res = predict_scene(
        model,
        ms_dn,
        pan_dn,
        tile=64,
        overlap=32,
        max_value=max_value,
        out=out,
        verbose=0,
    )
    assert res is out
    np.testing.assert_allclose(np.asarray(out) / max_value, ref, atol=1e-5)


def test_predict_scene_bad_input(rng):
    model = PNN(bands=4)
    ms, pan = _scene(rng, 16, 16)
    with pytest.raises(ValueError, match="4x the MS size"):
        predict_scene(model, ms, pan[:60], verbose=0)
    with pytest.raises(ValueError, match="max_value"):
        predict_scene(model, (ms * 100).astype("uint16"), pan, verbose=0)
    with pytest.raises(ValueError, match="overlap"):
        predict_scene(model, ms, pan, tile=32, overlap=20, verbose=0)
    bad = ms.copy()
    bad[3, 3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        predict_scene(model, bad, pan, tile=32, overlap=8, verbose=0)


def _small_pantiny(seed=0):
    keras.utils.set_random_seed(seed)
    model = PanTiny(bands=4, dim=8, num_heads=2, encoder_depth=1, body_depth=1)
    # Non-trivial, different temperatures per layer and head.
    for i, layer in enumerate(global_statistics_layers(model)):
        layer.temperature.assign(np.array([3.0 + i, 0.4], "float32"))
    return model


def _call(model, ms, pan):
    out = model({"ms": ms[None], "pan": pan[None, ..., None]}, training=False)
    return keras.ops.convert_to_numpy(out)[0]


def test_core_tiles_partition():
    for size, tile, halo in [(128, 48, 12), (96, 40, 12), (100, 64, 8), (40, 64, 8)]:
        tiles = core_tiles(size, tile, halo)
        length = min(tile, size)
        covered = np.zeros(size, int)
        for t0, c0, c1 in tiles:
            covered[c0:c1] += 1
            assert 0 <= t0 and t0 + length <= size and t0 <= c0 < c1 <= t0 + length
            # Context on each side that is not the scene edge.
            assert t0 == 0 or c0 - t0 >= halo
            assert t0 + length == size or t0 + length - c1 >= halo
        np.testing.assert_array_equal(covered, 1)
    with pytest.raises(ValueError, match="halo"):
        core_tiles(128, 40, 20)


def test_receptive_radius():
    # embed 1 + 2 per block (qkv and FFN depthwise) + fusion 2 + refine/output 2.
    model = PanTiny()
    assert receptive_radius(model) == 17
    assert len(global_statistics_layers(model)) == 6
    assert receptive_radius(_small_pantiny()) == 9
    assert global_statistics_layers(PNN(bands=4)) == []


def test_attention_collect_and_frozen_modes(rng):
    x = rng.normal(size=(2, 6, 5, 8)).astype("float32")
    layer = ChannelAttention(num_heads=2)
    layer.build(x.shape)
    layer.temperature.assign(np.array([2.5, 0.3], "float32"))
    ref = keras.ops.convert_to_numpy(layer(x))
    # Statistics summed over two parts of each image == over the image.
    sums = [0.0, 0.0, 0.0]
    for rows in (slice(0, 2), slice(2, 6)):
        mask = np.zeros((2, 6, 5), "float32")
        mask[:, rows] = 1.0
        layer.global_stats_mode = ("collect", mask)
        with pytest.raises(GlobalStatisticsCollected):
            layer(x)
        assert [t.shape for t in layer.global_stats] == [(2, 8, 8), (2, 8), (2, 8)]
        sums = [a + np.asarray(b, np.float64) for a, b in zip(sums, layer.global_stats)]
    attn = layer.attention_from_stats(*sums)
    assert attn.shape == (2, 8, 8)
    np.testing.assert_allclose(attn.sum(-1), 1.0, atol=1e-6)
    assert np.all(attn[:, :4, 4:] == 0) and np.all(attn[:, 4:, :4] == 0)
    layer.global_stats_mode = ("frozen", attn)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), ref, atol=1e-5)
    layer.global_stats_mode = None
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x)), ref)
    assert "global_stats_mode" not in layer.get_config()


def test_exact_tiled_equals_untiled_for_pantiny(rng):
    model = _small_pantiny()
    ms, pan = _scene(rng, 24, 32)  # PAN 96 x 128
    full = _call(model, ms, pan)
    tiled = predict_scene(model, ms, pan, tile=48, batch_size=4, verbose=0)
    assert tiled.shape == full.shape and tiled.dtype == np.float32
    assert np.abs(tiled - full).max() < 1e-5
    # Blending is only approximate: each tile has its own attention statistics.
    blended = predict_scene(model, ms, pan, tile=48, overlap=16, exact=False, verbose=0)
    assert np.abs(blended - full).max() > 1e-3
    # The normal call is untouched afterwards (modes reset).
    assert all(lay.global_stats_mode is None for lay in global_statistics_layers(model))
    np.testing.assert_array_equal(_call(model, ms, pan), full)


def test_exact_modes_reset_after_error(rng):
    model = _small_pantiny()
    ms, pan = _scene(rng, 16, 16)
    pan[40, 40] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        predict_scene(model, ms, pan, tile=40, verbose=0)
    assert all(lay.global_stats_mode is None for lay in global_statistics_layers(model))
    with pytest.raises(ValueError, match="halo"):
        predict_scene(model, ms[:, :], pan, tile=32, halo=6, verbose=0)


def test_exact_for_convnet_and_dn(rng):
    model = PNN(bands=4)
    ms, pan = _scene(rng, 16, 20)
    full = _call(model, ms, pan)
    tiled = predict_scene(model, ms, pan, tile=48, exact=True, verbose=0)
    assert np.abs(tiled - full).max() < 1e-5
    max_value = 2047.0
    dn = predict_scene(
        model, ms * max_value, pan * max_value, tile=48, exact=True,
        max_value=max_value, verbose=0,
    )  # fmt: skip
    np.testing.assert_allclose(dn / max_value, full, atol=1e-5)


def test_non_finite_tile_is_named_memmap(rng, tmp_path):
    """Array-likes are read tile by tile; the bad tile and pixel are named."""
    model = PNN(bands=4)
    ms, pan = _scene(rng, 32, 32)  # PAN 128 x 128
    ms_mm = np.lib.format.open_memmap(
        tmp_path / "ms.npy", mode="w+", dtype=np.float32, shape=ms.shape
    )
    ms_mm[:] = ms
    ms_mm[20, 25, 2] = np.nan
    ms_mm.flush()
    ms_mm = np.load(tmp_path / "ms.npy", mmap_mode="r")
    # Found in the first tile read whose data (MS tile plus the circular
    # interp23tap halo) holds it.
    with pytest.raises(
        ValueError,
        match=r"'ms' contains 1 NaN or inf.*PAN rows 0:64, cols 0:64.*ms row 20, col 25",
    ):
        predict_scene(model, ms_mm, pan, tile=64, overlap=0, verbose=0)
    # Without the halo (a precomputed lms): the MS tile holding the pixel.
    lms = np.zeros((128, 128, 4), np.float32)
    with pytest.raises(ValueError, match=r"'ms'.*PAN rows 64:128, cols 64:128"):
        predict_scene(model, ms_mm, pan, lms=lms, tile=64, overlap=0, verbose=0)
    bad = pan.copy()
    bad[3, 70] = -np.inf
    with pytest.raises(
        ValueError, match=r"'pan' contains 1 NaN or inf.*rows 0:64.*pan row 3, col 70"
    ):
        predict_scene(model, ms, bad, tile=64, overlap=0, verbose=0)
    # In the circular halo of a tile's interp23tap, before the model runs.
    bad_ms = ms.copy()
    bad_ms[31, 31, 0] = np.nan
    with pytest.raises(ValueError, match=r"'ms'.*rows 0:64, cols 0:64.*row 31, col 31"):
        predict_scene(model, bad_ms, pan, tile=64, overlap=0, verbose=0)
    lms[100, 1, 3] = np.inf
    with pytest.raises(ValueError, match=r"'lms'.*lms row 100, col 1"):
        predict_scene(model, ms, pan, lms=lms, tile=64, overlap=0, verbose=0)


def test_digital_numbers_warn_once_and_are_not_rescaled(rng):
    import warnings

    model = PNN(bands=4)
    ms, pan = _scene(rng, 24, 24)  # PAN 96: 4 tiles of 64 (overlap 32)
    ms_dn, pan_dn = ms * 2047, pan * 2047
    kept = ms_dn.copy()
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        out = predict_scene(model, ms_dn, pan_dn, tile=64, overlap=32, verbose=0)
    msgs = [str(w.message) for w in rec if issubclass(w.category, UserWarning)]
    # One warning per call (not per tile, not repeated by the model's check).
    assert len(msgs) == 1, msgs
    assert "reaches 204" in msgs[0] and "max_value=" in msgs[0]
    assert rec[0].filename == __file__
    np.testing.assert_array_equal(ms_dn, kept)
    # Not rescaled: the model ran on the DN values as given.
    with pytest.warns(UserWarning, match="input values above"):
        ref = model.predict(
            {"ms": ms_dn[None], "pan": pan_dn[None, ..., None]}, verbose=0
        )[0]
    assert np.abs(out - ref).max() < 1e-3 * np.abs(ref).max()
    # A max_value below the data's range is reported too.
    with pytest.warns(UserWarning, match=r"max_value=255 is below.*reach 204"):
        predict_scene(
            model, ms_dn, pan_dn, max_value=255, tile=64, overlap=32, verbose=0
        )
    # Normalised inputs (and DN with the right max_value) do not warn.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        predict_scene(model, ms, pan, tile=64, overlap=32, verbose=0)
        predict_scene(
            model, ms_dn, pan_dn, max_value=2047, tile=64, overlap=32, verbose=0
        )


# ------------------------------------------- exact scheme: compiled and cached
def test_balanced_core_tiles_partition():
    from keras_pansharp.inference import balanced_core_tiles

    cases = [(1024, 512, 20), (2048, 512, 20), (96, 48, 12), (128, 64, 20)]
    cases += [(100, 64, 8), (40, 64, 8), (4096, 1024, 20), (132, 48, 4)]
    for size, tile, halo in cases:
        length, tiles = balanced_core_tiles(size, tile, halo)
        assert length == min(size, length) and length <= max(tile, size)
        assert length % 4 == 0 or length == size
        # Never more tiles than `core_tiles`, each no longer.
        assert len(tiles) <= len(core_tiles(size, tile, halo))
        covered = np.zeros(size, int)
        for t0, c0, c1 in tiles:
            covered[c0:c1] += 1
            assert t0 % 4 == 0 and c0 % 4 == 0
            assert 0 <= t0 and t0 + length <= size and t0 <= c0 < c1 <= t0 + length
            assert t0 == 0 or c0 - t0 >= halo
            assert t0 + length == size or t0 + length - c1 >= halo
        np.testing.assert_array_equal(covered, 1)
    # 1024 with 512-pixel tiles: 3 tiles of 368 instead of 3 of 512.
    assert balanced_core_tiles(1024, 512, 20)[0] == 368
    with pytest.raises(ValueError, match="halo"):
        balanced_core_tiles(128, 40, 20)


def test_units_pad_fewest_tiles():
    from keras_pansharp.inference.predict import _units

    # One call per batch: 10 tiles in batches of 4 -> 4 batches of 3 would
    # pad 2; 5 batches of 2 pad none.
    assert _units(10, 4) == (5, 2, 1, 2)
    assert _units(9, 4) == (3, 3, 1, 3)
    assert _units(3, 8) == (1, 3, 1, 3)
    # Grouped (JAX): 9 tiles, room for 33 per call -> one call, 3 x 3.
    assert _units(9, 4, 33) == (1, 9, 3, 3)
    # Room for 2 tiles only: units of batch_size tiles.
    units, per_unit, group, size = _units(9, 4, 2)
    assert units * per_unit >= 9 and group * size >= per_unit and size <= 4


def _exact_reference(rng, full_model=False):
    if full_model:
        keras.utils.set_random_seed(1)
        model = PanTiny(bands=4)
        for i, layer in enumerate(global_statistics_layers(model)):
            layer.temperature.assign(np.array([1.5 + 0.5 * i, 0.3], "float32"))
        ms, pan = _scene(rng, 28, 36)  # PAN 112 x 144
    else:
        model = _small_pantiny()
        ms, pan = _scene(rng, 24, 32)  # PAN 96 x 128
    return model, ms, pan, _call(model, ms, pan)


def test_exact_uses_compiled_plan_for_pantiny(rng):
    from keras_pansharp.inference.exact_plan import _cached_plan

    model, ms, pan, full = _exact_reference(rng, full_model=True)
    plan = _cached_plan(model, global_statistics_layers(model))
    # One segment per attention layer plus the tail.
    assert plan is not None and len(plan.segments) == 7
    assert _cached_plan(model, global_statistics_layers(model)) is plan
    for tile, batch_size in [(64, 4), (80, 3), (144, 1)]:
        tiled = predict_scene(
            model, ms, pan, tile=tile, batch_size=batch_size, exact=True, verbose=0
        )
        assert np.abs(tiled - full).max() < 1e-5, (tile, batch_size)
    # DN in, DN out, into a given array.
    out = np.zeros_like(full)
    res = predict_scene(
        model, ms * 2047, pan * 2047, max_value=2047, tile=64, out=out, verbose=0
    )
    assert res is out
    np.testing.assert_allclose(out / 2047, full, atol=1e-5)


def test_exact_cache_spills_to_disk_and_is_removed(rng, tmp_path):
    model, ms, pan, full = _exact_reference(rng)
    import tempfile

    opened = []
    real = tempfile.TemporaryFile

    def spy(*args, **kwargs):
        f = real(*args, **kwargs)
        opened.append((kwargs.get("dir"), f))
        return f

    tempfile.TemporaryFile = spy
    try:
        tiled = predict_scene(
            model, ms, pan, tile=48, batch_size=2, cache_mb=0, cache_dir=str(tmp_path),
            verbose=0,
        )  # fmt: skip
    finally:
        tempfile.TemporaryFile = real
    assert np.abs(tiled - full).max() < 1e-5
    # The activations went to one anonymous file in `cache_dir`, closed at
    # the end, and nothing is left in the folder.
    assert len(opened) == 1 and opened[0][0] == str(tmp_path)
    assert opened[0][1].closed
    assert list(tmp_path.iterdir()) == []
    # Part in memory, part on disk (15 tiles of 74 kB, room for 14).
    tiled = predict_scene(model, ms, pan, tile=48, batch_size=2, cache_mb=1, verbose=0)
    assert np.abs(tiled - full).max() < 1e-5


def test_exact_cache_file_closed_on_error(rng, tmp_path, monkeypatch):
    from keras_pansharp.inference import cache, exact_plan

    model, ms, pan, _ = _exact_reference(rng)
    closed = []
    real_close = cache._ActivationCache.close

    def close(self):
        closed.append(self._file is not None)
        real_close(self)

    monkeypatch.setattr(cache._ActivationCache, "close", close)
    real_run = exact_plan._ExactPlan.run

    def failing_run(self, s, *args, **kwargs):
        if s == 1:
            raise RuntimeError("boom")
        return real_run(self, s, *args, **kwargs)

    monkeypatch.setattr(exact_plan._ExactPlan, "run", failing_run)
    with pytest.raises(RuntimeError, match="boom"):
        predict_scene(
            model, ms, pan, tile=48, cache_mb=0, cache_dir=str(tmp_path), verbose=0
        )
    assert closed == [True] and list(tmp_path.iterdir()) == []


def test_exact_recomputes_without_disk_room(rng, monkeypatch):
    from keras_pansharp.inference import predict

    model, ms, pan, full = _exact_reference(rng)
    monkeypatch.setattr(predict, "_fits_disk", lambda nbytes, directory: False)
    tiled = predict_scene(model, ms, pan, tile=48, cache_mb=0, verbose=0)
    assert np.abs(tiled - full).max() < 1e-5


def test_exact_eager_fallback(rng, monkeypatch):
    """Models the compiled plan does not cover run the eager scheme."""
    from keras_pansharp.inference import predict

    model, ms, pan, full = _exact_reference(rng)
    monkeypatch.setattr(predict, "_cached_plan", lambda model, layers: None)
    tiled = predict_scene(model, ms, pan, tile=48, verbose=0)
    assert np.abs(tiled - full).max() < 1e-5
    assert all(lay.global_stats_mode is None for lay in global_statistics_layers(model))


def test_exact_plan_rejects_unsupported_graphs():
    from keras_pansharp.inference.exact_plan import _exact_plan

    # A shared attention layer called twice: no plan (eager scheme instead).
    inputs = {
        "ms": keras.Input((None, None, 4), name="ms"),
        "pan": keras.Input((None, None, 1), name="pan"),
    }
    attn = ChannelAttention(num_heads=2)
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs["pan"])
    x = attn(attn(x))
    model = keras.Model(inputs, x)
    assert _exact_plan(model, global_statistics_layers(model)) is None


def test_exact_plan_bare_attention_node(rng):
    """A `ChannelAttention` called directly in the graph (no block)."""
    from keras_pansharp.inference.exact_plan import _cached_plan

    keras.utils.set_random_seed(3)
    inputs = {
        "ms": keras.Input((None, None, 4), name="ms"),
        "pan": keras.Input((None, None, 1), name="pan"),
    }
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs["pan"])
    x = ChannelAttention(num_heads=2)(x)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = ChannelAttention(num_heads=4)(x)
    x = keras.layers.Conv2D(4, 3, padding="same")(x)
    model = keras.Model(inputs, x)
    for i, layer in enumerate(global_statistics_layers(model)):
        layer.temperature.assign(np.linspace(0.5, 3.0 + i, layer.num_heads))
    assert _cached_plan(model, global_statistics_layers(model)) is not None
    ms, pan = _scene(rng, 20, 24)
    full = _call(model, ms, pan)
    tiled = predict_scene(model, ms, pan, tile=40, exact=True, verbose=0)
    assert np.abs(tiled - full).max() < 1e-5
