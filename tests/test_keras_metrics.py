"""Keras metrics: agreement with the exact NumPy functions, compiled fit()."""

import keras
import numpy as np
import pytest

from keras_pansharp.metrics import keras_metrics as KM
from keras_pansharp.metrics import reduced_resolution as RR

MAX = 2047.0
PAIRS = [
    (KM.SAM, "sam"),
    (KM.ERGAS, "ergas"),
    (KM.SCC, "scc"),
    (KM.PSNR, "psnr"),
    (KM.SSIM, "ssim"),
    (KM.Q2n, "q2n"),
]


def _make(cls):
    return cls(max_value=MAX) if cls is KM.Q2n else cls()


def _compiled(fn):
    """Trace `fn` once (JAX eager dispatch compiles every op separately)."""
    if keras.backend.backend() == "jax":
        import jax

        return jax.jit(fn)
    return fn


def _result(metric, gt, fused, **kw):
    metric.update_state(gt.astype("float32"), fused.astype("float32"), **kw)
    return float(keras.ops.convert_to_numpy(metric.result()))


@pytest.mark.parametrize("case", ["rr_qb", "rr_wv3_patch0", "rr_pleiades"])
def test_golden_cases_agree_with_numpy(golden_dir, case):
    data = np.load(golden_dir / f"{case}.npz")
    gt = data["gt"]
    methods = ("EXP", "BT_H", "MTF_GLP_HPM_R")
    fused = np.stack([data[f"fused_{m}"] for m in methods])
    refs = [RR.evaluate_rr(f, gt, max_value=MAX) for f in fused]
    gt_b = np.repeat((gt / MAX)[None], len(methods), axis=0).astype("float32")
    fused_b = (fused / MAX).astype("float32")
    for cls, key in PAIRS:
        # Per-image values of the batch (one image per method).
        per_image = _compiled(_make(cls).per_image)
        got = keras.ops.convert_to_numpy(per_image(gt_b, fused_b))
        for m, g, r in zip(methods, got, refs):
            assert abs(float(g) - r[key]) <= 1e-4, (case, m, key, g, r[key])


def _per_image_reference(gt, fused):
    out = {k: [] for _, k in PAIRS}
    for g, f in zip(gt, fused):
        r = RR.evaluate_rr(f * MAX, g * MAX, max_value=MAX)
        for _, k in PAIRS:
            out[k].append(r[k])
    return out


def test_batch_aggregation_and_sample_weight(rng):
    gt = rng.uniform(0.05, 0.9, (4, 32, 32, 4))
    fused = np.clip(gt + rng.normal(0, 0.02, gt.shape), 0, 1)
    ref = _per_image_reference(gt, fused)
    w = np.array([1.0, 0.0, 3.0, 0.5])
    # The rule lives in the shared base class; evaluate() in
    # test_compiled_fit_and_evaluate covers every metric.
    for cls, key in [PAIRS[0], PAIRS[-1]]:
        m = _make(cls)
        m.update_state(gt[:2].astype("float32"), fused[:2].astype("float32"))
        got = _result(m, gt[2:], fused[2:])
        assert got == pytest.approx(np.mean(ref[key]), abs=1e-4), key
        m.reset_state()
        assert float(keras.ops.convert_to_numpy(m.result())) == 0.0
        m.update_state(gt[:2], fused[:2], sample_weight=w[:2])
        got_w = _result(m, gt[2:], fused[2:], sample_weight=w[2:])
        want_w = np.sum(w * np.array(ref[key])) / w.sum()
        assert got_w == pytest.approx(want_w, abs=1e-4), key


def _tiny_model(bands=4):
    ms = keras.Input((8, 8, bands), name="ms")
    pan = keras.Input((32, 32, 1), name="pan")
    up = keras.layers.UpSampling2D(4, interpolation="bilinear")(ms)
    x = keras.layers.Concatenate()([up, pan])
    x = keras.layers.Conv2D(bands, 3, padding="same")(x)
    out = keras.layers.Add()([up, x])
    return keras.Model({"ms": ms, "pan": pan}, out)


def test_compiled_fit_and_evaluate(rng):
    n, bands = 4, 4
    gt = rng.uniform(0.1, 0.8, (n, 32, 32, bands)).astype("float32")
    ms = gt.reshape(n, 8, 4, 8, 4, bands).mean(axis=(2, 4))
    pan = gt.mean(axis=-1, keepdims=True)
    x = {"ms": ms, "pan": pan}
    model = _tiny_model(bands)
    model.compile(
        optimizer="adam",
        loss="mae",
        metrics=[_make(cls) for cls, _ in PAIRS],
        jit_compile=True,
    )
    hist = model.fit(x, gt, batch_size=2, epochs=1, verbose=0)
    for _, key in PAIRS:
        assert np.isfinite(hist.history[key][0]), key
    scores = model.evaluate(x, gt, batch_size=2, verbose=0, return_dict=True)
    pred = model.predict(x, batch_size=2, verbose=0)
    ref = _per_image_reference(gt.astype(np.float64), pred.astype(np.float64))
    for _, key in PAIRS:
        assert scores[key] == pytest.approx(np.mean(ref[key]), abs=1e-4), key


def test_serialization_round_trip():
    for cls, _ in PAIRS:
        m = cls(sensor="wv3") if cls is KM.Q2n else cls()
        cfg = keras.saving.serialize_keras_object(m)
        m2 = keras.saving.deserialize_keras_object(cfg)
        assert type(m2) is cls
        assert m2.get_config() == m.get_config()
    q = KM.Q2n(sensor="gf2")
    assert q.max_value == 1023.0
    assert KM.ERGAS(ratio=4).get_config()["ratio"] == 4


def test_errors():
    with pytest.raises(ValueError, match="sensor"):
        KM.Q2n()
    a = np.zeros((1, 32, 32, 4), "float32")
    with pytest.raises(ValueError, match="same"):
        KM.SAM().update_state(a, a[:, :16])
    with pytest.raises(ValueError, match="B, H, W, C"):
        KM.ERGAS().update_state(a[0], a[0])
