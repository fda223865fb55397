"""RREvaluation / FREvaluation inside a real fit()."""

import csv

import keras
import numpy as np
import pytest

from keras_pansharp.callbacks import FREvaluation, RREvaluation
from keras_pansharp.metrics import full_resolution as FR
from keras_pansharp.metrics import reduced_resolution as RR

RR_KEYS = ("q2n", "q_avg", "sam", "ergas", "scc", "psnr", "ssim")
FR_KEYS = ("hqnr", "qnr", "d_lambda", "d_s", "d_lambda_k")


def _tiny_model(bands=4):
    ms = keras.Input((8, 8, bands), name="ms")
    pan = keras.Input((32, 32, 1), name="pan")
    up = keras.layers.UpSampling2D(4, interpolation="bilinear")(ms)
    x = keras.layers.Concatenate()([up, pan])
    x = keras.layers.Conv2D(bands, 3, padding="same")(x)
    out = keras.layers.Add()([up, x])
    model = keras.Model({"ms": ms, "pan": pan}, out)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mae")
    return model


def _pair(rng, n=2, bands=4):
    """Smooth-ish [0, 1] images: (inputs, gt)."""
    base = rng.uniform(0.2, 0.6, (n, 8, 8, bands))
    gt = np.repeat(np.repeat(base, 4, axis=1), 4, axis=2)
    gt = gt + rng.normal(0, 0.02, gt.shape)
    gt = np.clip(gt, 0.01, 1).astype("float32")
    ms = gt.reshape(n, 8, 4, 8, 4, bands).mean(axis=(2, 4)).astype("float32")
    pan = gt.mean(axis=-1, keepdims=True).astype("float32")
    return {"ms": ms, "pan": pan}, gt


def test_rr_keys_reach_history_and_csv(rng, tmp_path):
    qb, gf2 = _pair(rng), _pair(rng)
    train_x, train_y = _pair(rng, n=4)
    cb = RREvaluation({"qb": qb, "gf2": gf2})
    log = tmp_path / "log.csv"
    model = _tiny_model()
    hist = model.fit(
        train_x,
        train_y,
        batch_size=2,
        epochs=2,
        verbose=0,
        callbacks=[cb, keras.callbacks.CSVLogger(str(log))],
    )
    for k in RR_KEYS:
        for key in (f"val_{k}", f"val_{k}_qb", f"val_{k}_gf2"):
            assert len(hist.history[key]) == 2, key
            assert np.isfinite(hist.history[key][-1]), key
    # The logged numbers are the exact metrics on the model's predictions (DN).
    for name, (inputs, gt), scale in (("qb", qb, 2047.0), ("gf2", gf2, 1023.0)):
        pred = model.predict(inputs, verbose=0).astype(np.float64)
        per = [
            RR.evaluate_rr(p * scale, g * scale, max_value=scale)
            for p, g in zip(pred, gt.astype(np.float64))
        ]
        for k in RR_KEYS:
            want = np.mean([r[k] for r in per])
            assert hist.history[f"val_{k}_{name}"][-1] == pytest.approx(want, rel=1e-9)
    both = (hist.history["val_q2n_qb"][-1] + hist.history["val_q2n_gf2"][-1]) / 2
    assert hist.history["val_q2n"][-1] == pytest.approx(both)
    with open(log) as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 and "val_q2n" in rows[0] and "val_sam_gf2" in rows[0]
    assert float(rows[1]["val_ergas"]) == pytest.approx(hist.history["val_ergas"][1])


def test_fr_checkpoint_monitors_hqnr(rng, tmp_path):
    inputs, _ = _pair(rng)
    train_x, train_y = _pair(rng, n=4)
    path = tmp_path / "best.keras"
    fr = FREvaluation({"qb": inputs})
    ckpt = keras.callbacks.ModelCheckpoint(
        str(path), monitor="fr_hqnr", mode="max", save_best_only=True
    )
    stop = keras.callbacks.EarlyStopping(monitor="fr_hqnr", mode="max", patience=5)
    model = _tiny_model()
    hist = model.fit(
        train_x,
        train_y,
        batch_size=2,
        epochs=2,
        verbose=0,
        callbacks=[fr, ckpt, stop],
    )
    assert path.is_file()
    assert ckpt.best == pytest.approx(max(hist.history["fr_hqnr"]))
    for k in FR_KEYS:
        assert len(hist.history[f"fr_{k}"]) == 2
        assert hist.history[f"fr_{k}_qb"] == hist.history[f"fr_{k}"]
    pred = model.predict(inputs, verbose=0).astype(np.float64)
    per = [
        FR.evaluate_fr(p * 2047, m * 2047, q * 2047, sensor="qb")
        for p, m, q in zip(
            pred, inputs["ms"].astype(np.float64), inputs["pan"].astype(np.float64)
        )
    ]
    for k in FR_KEYS:
        assert hist.history[f"fr_{k}"][-1] == pytest.approx(
            np.mean([r[k] for r in per]), rel=1e-9
        )
    # The saved model loads back.
    keras.saving.load_model(str(path))


def test_ordering_matters_checkpoint_after_evaluation(rng, tmp_path):
    """ModelCheckpoint listed BEFORE the evaluation callback cannot see its key.

    Keras then warns and saves every epoch whatever the score (no "best").
    """
    inputs, _ = _pair(rng)
    train_x, train_y = _pair(rng, n=2)
    path = tmp_path / "unmonitored.keras"
    ckpt = keras.callbacks.ModelCheckpoint(
        str(path), monitor="fr_hqnr", mode="max", save_best_only=True
    )
    model = _tiny_model()
    with pytest.warns(UserWarning, match="fr_hqnr"):
        model.fit(
            train_x,
            train_y,
            epochs=1,
            verbose=0,
            callbacks=[ckpt, FREvaluation(inputs, sensor="qb", metrics=["hqnr"])],
        )
    assert ckpt.best is None or not np.isfinite(ckpt.best)


def test_batches_every_n_epochs_and_subset(rng):
    (x1, y1), (x2, y2) = _pair(rng), _pair(rng)
    batches = [(x1, y1), (x2, y2)]
    arrays = (
        {k: np.concatenate([x1[k], x2[k]]) for k in x1},
        np.concatenate([y1, y2]),
    )
    cb_b = RREvaluation(batches, sensor="qb", metrics=["sam", "q2n"], every_n_epochs=3)
    cb_a = RREvaluation(arrays, sensor="qb", metrics=["sam", "q2n"], prefix="rr_")
    fr_b = FREvaluation([x1, (x2, y2)], sensor="qb", every_n_epochs=5)
    model = _tiny_model()
    hist = model.fit(x1, y1, epochs=4, verbose=0, callbacks=[cb_b, cb_a, fr_b])
    # every_n_epochs=3 over 4 epochs: epochs 1 (first), 3 and 4 (last).
    assert len(hist.history["val_sam"]) == 3
    assert len(hist.history["rr_sam"]) == 4
    assert len(hist.history["fr_hqnr"]) == 2  # every 5: first and last
    assert "val_ergas" not in hist.history and "val_sam_qb" not in hist.history
    assert hist.history["val_sam"][-1] == pytest.approx(hist.history["rr_sam"][-1])
    assert hist.history["val_q2n"][-1] == pytest.approx(hist.history["rr_q2n"][-1])
    assert cb_b.last_results["val_q2n"] == hist.history["val_q2n"][-1]
    # tf.data batches work too (any backend).
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices(arrays).batch(2)
    got = RREvaluation(ds, sensor="qb", metrics=["sam"])
    got.set_model(model)
    assert got.evaluate()["val_sam"] == pytest.approx(hist.history["rr_sam"][-1])


def test_multi_sensor_dataset_evaluation_data(rng):
    from keras_pansharp.data import MultiSensorDataset

    inputs, gt = _pair(rng)
    val = MultiSensorDataset.for_evaluation(
        {
            "qb": {
                "ms": inputs["ms"] * 2047,
                "pan": inputs["pan"] * 2047,
                "gt": gt * 2047,
            }
        },
        batch_size=2,
    )
    cb = RREvaluation(val, metrics=["q2n", "sam"])
    model = _tiny_model()
    cb.set_model(model)
    res = cb.evaluate()
    direct = RREvaluation({"qb": (inputs, gt)}, metrics=["q2n", "sam"])
    direct.set_model(model)
    want = direct.evaluate()
    assert set(res) == set(want)
    for k in want:
        assert res[k] == pytest.approx(want[k], rel=1e-5), k


def test_nan_output_logs_nan(rng):
    inputs, gt = _pair(rng)
    ms = keras.Input((8, 8, 4), name="ms")
    pan = keras.Input((32, 32, 1), name="pan")
    up = keras.layers.UpSampling2D(4)(ms)
    out = keras.layers.Lambda(lambda t: t * np.float32(np.nan))(up)
    model = keras.Model({"ms": ms, "pan": pan}, out)
    cb = RREvaluation({"qb": (inputs, gt)}, metrics=["sam"])
    cb.set_model(model)
    with pytest.warns(UserWarning, match="NaN"):
        res = cb.evaluate()
    assert np.isnan(res["val_sam"])


def test_errors(rng):
    inputs, gt = _pair(rng)
    with pytest.raises(ValueError, match="sensor="):
        RREvaluation((inputs, gt))
    with pytest.raises(ValueError, match="Unknown RR metric"):
        RREvaluation({"qb": (inputs, gt)}, metrics=["hqnr"])
    with pytest.raises(ValueError, match="one-shot"):
        RREvaluation((b for b in [(inputs, gt)]), sensor="qb")
    with pytest.raises(ValueError, match="every_n_epochs"):
        FREvaluation({"qb": inputs}, every_n_epochs=0)
    with pytest.raises(ValueError, match="Unknown sensor"):
        FREvaluation({"nosuchsensor": inputs})
    cb = RREvaluation({"wv3": (inputs, gt)})
    cb.set_model(_tiny_model())
    with pytest.raises(ValueError, match="bands"):
        cb.evaluate()


@pytest.mark.slow  # the tiny-model tests above cover the same callback behaviour
def test_pantiny_fit_with_fr_checkpoint(rng, tmp_path):
    """The library's own model (dynamic spatial sizes, optional "lms" input)."""
    from keras_pansharp import PanTiny

    inputs, gt = _pair(rng)
    model = PanTiny(bands=4, dim=8, num_heads=2, encoder_depth=1, body_depth=1)
    model.compile(optimizer="adam", loss="mae")
    path = tmp_path / "pantiny.keras"
    hist = model.fit(
        inputs,
        gt,
        batch_size=2,
        epochs=1,
        verbose=0,
        callbacks=[
            FREvaluation({"qb": inputs}, metrics=["hqnr", "d_s"]),
            keras.callbacks.ModelCheckpoint(
                str(path), monitor="fr_hqnr", mode="max", save_best_only=True
            ),
        ],
    )
    assert path.is_file()
    assert 0.0 <= hist.history["fr_hqnr"][0] <= 1.0
