"""predict_scene: tiled prediction with overlap blending equals untiled."""

import numpy as np
import pytest

from keras_pansharp.inference import blend_weights, predict_scene, tile_starts
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
