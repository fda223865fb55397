"""predict_scene: tiled prediction (exact multi-pass or blending) equals untiled."""

import keras
import numpy as np
import pytest

from keras_pansharp.inference import (
    blend_weights,
    core_tiles,
    global_statistics_layers,
    predict_scene,
    receptive_radius,
    tile_starts,
)
from keras_pansharp.layers.transformer import (
    ChannelAttention,
    GlobalStatisticsCollected,
)
from keras_pansharp.models.pantiny import PanTiny
from keras_pansharp.models.pnn import PNN


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
