"""SavedModel export: a TensorFlow-only process reproduces model.predict."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_pansharp.export import METADATA_FILE, export_saved_model
from keras_pansharp.models.pantiny import PanTiny

# Runs in a fresh interpreter that imports TensorFlow only (never
# keras_pansharp): the served model must be self-contained.
_SERVE = r"""
import sys
import numpy as np
import tensorflow as tf
path, inp, out = sys.argv[1:4]
data = np.load(inp)
served = tf.saved_model.load(path)
sig = served.signatures
res = {}
for name in ("a", "b"):
    res[name] = sig["serving_default"](
        ms=tf.constant(data[name + "_ms"]), pan=tf.constant(data[name + "_pan"])
    )["fused"].numpy()
if "serving_with_lms" in sig:
    res["lms"] = sig["serving_with_lms"](
        ms=tf.constant(data["a_ms"]), pan=tf.constant(data["a_pan"]),
        lms=tf.constant(data["a_lms"]),
    )["fused"].numpy()
if "serving_normalized" in sig:
    res["norm"] = sig["serving_normalized"](
        ms=tf.constant(data["n_ms"]), pan=tf.constant(data["n_pan"])
    )["fused"].numpy()
assert "keras_pansharp" not in sys.modules
np.savez(out, **res)
"""


def _model(bands=4):
    """A small PanTiny (global channel attention, interp23tap, optional lms)."""
    return PanTiny(bands=bands, dim=8, num_heads=2, encoder_depth=1, body_depth=1)


def _serve_in_tf_only_process(path, inputs, tmp_path):
    inp = tmp_path / "inputs.npz"
    out = tmp_path / "outputs.npz"
    np.savez(inp, **inputs)
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    proc = subprocess.run(
        [sys.executable, "-c", _SERVE, str(path), str(inp), str(out)],
        env=env,
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(np.load(out))


def test_saved_model_round_trip_raw_dn(tmp_path, rng):
    bands, max_value = 4, 2047.0
    model = _model(bands)
    sizes = {"a": (2, 8, 8), "b": (1, 12, 20)}  # batch, h, w of the MS
    inputs, expected = {}, {}
    for name, (b, h, w) in sizes.items():
        ms = rng.random((b, h, w, bands)).astype("float32")
        pan = rng.random((b, 4 * h, 4 * w, 1)).astype("float32")
        inputs[name + "_ms"] = ms * max_value
        inputs[name + "_pan"] = pan * max_value
        expected[name] = model.predict({"ms": ms, "pan": pan}, verbose=0)
        if name == "a":
            inputs["n_ms"], inputs["n_pan"] = ms, pan
            lms = rng.random((b, 4 * h, 4 * w, bands)).astype("float32")
            inputs["a_lms"] = lms * max_value
            with_lms = model.predict({"ms": ms, "pan": pan, "lms": lms}, verbose=0)
    path = tmp_path / "served"
    export_saved_model(model, path, raw_dn=True, max_value=max_value)
    meta = json.loads((path / METADATA_FILE).read_text())
    assert meta["bands"] == bands and meta["raw_dn"] and meta["max_value"] == max_value
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".served")]
    got = _serve_in_tf_only_process(path, inputs, tmp_path)
    for name in sizes:
        assert got[name].shape == expected[name].shape
        np.testing.assert_allclose(got[name] / max_value, expected[name], atol=1e-5)
    np.testing.assert_allclose(got["norm"], expected["a"], atol=1e-5)
    np.testing.assert_allclose(got["lms"] / max_value, with_lms, atol=1e-5)

    # Existing path: refused unless overwrite=True (then replaced atomically).
    with pytest.raises(FileExistsError):
        export_saved_model(model, path, raw_dn=True, max_value=max_value)
    if keras.backend.backend() != "tensorflow":
        return  # same code path as above, run in a TF child; save CI time
    export_saved_model(model, path, overwrite=True)
    assert json.loads((path / METADATA_FILE).read_text())["raw_dn"] is False


def test_export_bad_arguments(tmp_path):
    model = _model(4)
    with pytest.raises(ValueError, match="max_value"):
        export_saved_model(model, tmp_path / "x", raw_dn=True)
    inp = keras.Input((None, None, 3))
    plain = keras.Model(inp, keras.layers.Conv2D(3, 1)(inp))
    with pytest.raises(ValueError, match="'ms' and 'pan'"):
        export_saved_model(plain, tmp_path / "y")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_saved_model_calibrates_details(tmp_path, rng):
    # The in-model detail calibration (per image, a global statistic) serves
    # as `predict`: a calibrated size and one below a 32 x 32 block.
    bands = 4
    model = PanTiny(
        bands=bands,
        dim=8,
        num_heads=2,
        encoder_depth=1,
        body_depth=1,
        calibrate_details=True,
    )
    inputs, expected = {}, {}
    for name, (b, h, w) in {"a": (2, 12, 16), "b": (1, 6, 10)}.items():
        ms = rng.random((b, h, w, bands)).astype("float32")
        pan = rng.random((b, 4 * h, 4 * w, 1)).astype("float32")
        inputs[name + "_ms"], inputs[name + "_pan"] = ms, pan
        expected[name] = model.predict({"ms": ms, "pan": pan}, verbose=0)
    inputs["a_lms"] = rng.random((2, 48, 64, bands)).astype("float32")
    raw = PanTiny(bands=bands, dim=8, num_heads=2, encoder_depth=1, body_depth=1)
    raw.set_weights(model.get_weights())
    small = {"ms": inputs["b_ms"], "pan": inputs["b_pan"]}
    np.testing.assert_allclose(expected["b"], raw.predict(small, verbose=0), atol=1e-6)
    big = {"ms": inputs["a_ms"], "pan": inputs["a_pan"]}
    assert np.abs(expected["a"] - raw.predict(big, verbose=0)).max() > 1e-4
    path = tmp_path / "served"
    export_saved_model(model, path)
    got = _serve_in_tf_only_process(path, inputs, tmp_path)
    for name in ("a", "b"):
        np.testing.assert_allclose(got[name], expected[name], atol=1e-5)
