"""`keras_pansharp.evaluation`: per-sensor RR / FR tables.

Tiny synthetic data (RR: 64 x 64 references, FR: 64 x 64 PAN), so the file
runs in well under a minute on either backend.
"""

import json
import math
import os

import keras
import numpy as np
import pytest

import keras_pansharp as kp
from keras_pansharp.data import (
    ArrayReader,
    MultiSensorDataset,
    synthetic,
    wald_scene,
    write_pancollection,
)
from keras_pansharp.evaluation import (
    EvaluationSource,
    EvaluationTable,
    evaluate,
    load_sources,
)
from keras_pansharp.metrics import evaluate_fr, evaluate_rr
from keras_pansharp.signal import CLASSICAL_METHODS, exp_method, interp23tap
from keras_pansharp.utils.io import atomic_path, write_atomic

RR_KEYS = ("q2n", "sam", "ergas", "scc", "psnr")
FR_KEYS = ("d_lambda", "d_s", "qnr", "hqnr", "d_lambda_k")


def _rr_dn(sensor, seeds=(1, 2)):
    """RR arrays in DN: `{"ms", "pan", "lms", "gt"}`, N = len(seeds), PAN 64."""
    parts = [
        wald_scene(s.ms, s.pan, s.sensor)
        for s in (synthetic.make_scene(sensor, size=256, seed=k) for k in seeds)
    ]
    return {k: np.stack([p[k] for p in parts]) for k in ("ms", "pan", "lms", "gt")}


def _fr_dn(sensor, seeds=(3, 4)):
    """FR arrays in DN: `{"ms", "pan"}`, PAN 64 x 64."""
    scenes = [synthetic.make_scene(sensor, size=64, seed=k) for k in seeds]
    return {
        "ms": np.stack([s.ms for s in scenes]),
        "pan": np.stack([s.pan for s in scenes]),
    }


@pytest.fixture(scope="module")
def gf2():
    """4-band GF2 readers (DN) for RR and FR."""
    rr, fr = _rr_dn("gf2"), _fr_dn("gf2")
    return (
        ArrayReader(rr["ms"], rr["pan"], "gf2", gt=rr["gt"], lms=rr["lms"]),
        ArrayReader(fr["ms"], fr["pan"], "gf2"),
    )


@pytest.fixture(scope="module")
def wv3():
    """8-band WV3 readers (DN) for RR and FR."""
    rr, fr = _rr_dn("wv3", seeds=(5,)), _fr_dn("wv3", seeds=(6,))
    return (
        ArrayReader(rr["ms"], rr["pan"], "wv3", gt=rr["gt"]),
        ArrayReader(fr["ms"], fr["pan"], "wv3"),
    )


def _tiny_model(bands=4):
    ms = keras.Input((None, None, bands), name="ms")
    pan = keras.Input((None, None, 1), name="pan")
    up = keras.layers.UpSampling2D(4, interpolation="bilinear")(ms)
    x = keras.layers.Concatenate()([up, pan])
    x = keras.layers.Conv2D(bands, 3, padding="same")(x)
    return keras.Model({"ms": ms, "pan": pan}, keras.layers.Add()([up, x]))


def _direct(fuse, rr_src, fr_src, dim_cut=0):
    """Per-image scores from direct evaluate_rr / evaluate_fr calls."""
    fused = fuse(rr_src.inputs)
    rr = [
        evaluate_rr(
            fused[i],
            rr_src.gt[i],
            sensor=rr_src.sensor,
            normalized=True,
            dim_cut=dim_cut,
        )
        for i in range(len(rr_src))
    ]
    fused = fuse(fr_src.inputs)
    fr = [
        evaluate_fr(
            fused[i],
            fr_src.inputs["ms"][i],
            fr_src.inputs["pan"][i],
            sensor=fr_src.sensor,
            normalized=True,
            lms=fr_src.inputs["lms"][i],
        )
        for i in range(len(fr_src))
    ]
    return rr, fr


def _exp(inputs):
    return np.stack([exp_method(np.asarray(m, np.float64)) for m in inputs["ms"]])


# ---------------------------------------------------------------- numbers


def test_equals_direct_metric_calls_per_image_and_mean(gf2):
    table = evaluate(
        "EXP", rr={"gf2": gf2[0]}, fr={"gf2": gf2[1]}, per_image=True, dim_cut=3
    )
    srcs = load_sources({"gf2": gf2[0]}), load_sources({"gf2": gf2[1]})
    rr, fr = _direct(_exp, srcs[0]["gf2"], srcs[1]["gf2"], dim_cut=3)
    images = table.per_image["gf2"]
    assert len(images["rr"]) == 2 and len(images["fr"]) == 2
    for got, want in zip(images["rr"], rr):
        assert got == {f"rr_{k}": want[k] for k in RR_KEYS}
    for got, want in zip(images["fr"], fr):
        assert got == {f"fr_{k}": want[k] for k in FR_KEYS}
    row = table["gf2"]
    assert row["n_rr"] == 2 and row["n_fr"] == 2
    for k in RR_KEYS:
        assert row[f"rr_{k}"] == float(np.mean([s[k] for s in rr]))
    for k in FR_KEYS:
        assert row[f"fr_{k}"] == float(np.mean([s[k] for s in fr]))
    assert table.meta["predictor"] == "EXP" and table.meta["dim_cut"] == 3
    # Without per_image: the same means, no per-image scores.
    plain = evaluate("EXP", rr={"gf2": gf2[0]}, fr={"gf2": gf2[1]}, dim_cut=3)
    assert plain.rows == table.rows and plain.per_image is None


def test_sources_are_normalised_like_the_dataset(gf2):
    src = load_sources({"gf2": gf2[0]})["gf2"]
    ds = MultiSensorDataset.for_evaluation({"gf2": gf2[0]}, bands="native")
    inputs, gt = ds.evaluation_data()["gf2"]
    np.testing.assert_array_equal(src.gt, gt)
    for k in ("ms", "pan", "lms"):
        np.testing.assert_array_equal(src.inputs[k], inputs[k])
    raw = gf2[0].read(0)
    np.testing.assert_allclose(src.gt[0], raw["gt"] / 1023.0, rtol=1e-6)


def test_predictor_kinds(gf2):
    rr, fr = {"gf2": gf2[0]}, {"gf2": gf2[1]}
    data = {"rr": load_sources(rr), "fr": load_sources(fr)}
    model = _tiny_model()
    by_model = evaluate(model, **data)

    class Wrapped:  # e.g. a served SavedModel
        def predict_on_batch(self, x):
            assert set(x) == {"ms", "pan", "lms"}
            return model.predict_on_batch({"ms": x["ms"], "pan": x["pan"]})

    by_wrapper = evaluate(Wrapped(), **data, batch_size=1)
    for name in by_model:
        for k, v in by_model[name].items():
            assert by_wrapper[name][k] == pytest.approx(v, rel=1e-5, abs=1e-7), k
    assert by_wrapper.meta["predictor"] == "Wrapped"

    # A plain callable on batches.
    calls = []

    def upsample(ms, pan):
        calls.append(ms.shape[0])
        return np.stack([exp_method(m) for m in np.asarray(ms, np.float64)])

    by_callable = evaluate(upsample, **data, batch_size=1)
    assert calls == [1, 1, 1, 1]
    # Classical methods: by name, function, toolbox entry or sensor-callable.
    by_name = evaluate("exp", **data)
    assert by_callable.rows == by_name.rows
    for same in (
        exp_method,
        CLASSICAL_METHODS["EXP"],
        lambda ms, pan, sensor: interp23tap(ms),
    ):
        assert evaluate(same, **data).rows == by_name.rows
    assert evaluate(CLASSICAL_METHODS["EXP"], **data).meta["predictor"] == "EXP"
    bth = evaluate("BT-H", **data)
    assert evaluate("bt_h", **data).rows == bth.rows
    assert bth.rows != by_name.rows


def test_dict_of_predictors_compares_on_shared_data(gf2, wv3):
    rr = {"gf2": gf2[0], "wv3": wv3[0]}
    table = evaluate({"tiny": _tiny_model(4), "EXP": "EXP"}, rr=rr)
    assert table.names == ["gf2 / tiny", "gf2 / EXP", "wv3 / tiny", "wv3 / EXP"]
    assert table.index_name == "sensor / method"
    # The 4-band model makes every predictor use the blue/green/red/NIR bands.
    assert table.meta["bands"] == "rgbn"
    alone = evaluate("EXP", rr=rr, bands="rgbn")
    assert table["wv3 / EXP"] == alone["wv3"]
    assert table["gf2 / EXP"] == alone["gf2"]
    assert table.to_markdown().splitlines()[0].startswith("| sensor / method | Q2n")


def test_bands(wv3):
    native = evaluate("EXP", rr={"wv3": wv3[0]})
    assert native.meta["bands"] == "native"
    rgbn = evaluate("EXP", rr={"wv3": wv3[0]}, bands="rgbn")
    assert native["wv3"]["rr_q2n"] != rgbn["wv3"]["rr_q2n"]
    src = load_sources({"wv3": wv3[0]}, bands="rgbn")["wv3"]
    assert src.sensor.name == "WV3_RGBN" and src.inputs["ms"].shape[-1] == 4
    # Arrays of the full band count are reduced the same way.
    full = load_sources({"wv3": wv3[0]})["wv3"]
    arrays = load_sources({"wv3": (full.inputs, full.gt)}, bands="rgbn")["wv3"]
    np.testing.assert_array_equal(arrays.gt, src.gt)
    # A 4-band model forced onto 8-band data: a clear error.
    with pytest.raises(
        ValueError,
        match=r"takes 4 MS bands but source 'wv3' \(WV3\) has 8.*bands='rgbn'",
    ):
        evaluate(_tiny_model(4), rr={"wv3": wv3[0]}, bands="native")


def test_source_forms(gf2, tmp_path):
    reader = gf2[0]
    dn = {
        k: np.stack([reader.read(i)[k] for i in range(2)])
        for k in ("ms", "pan", "lms", "gt")
    }
    path = write_pancollection(tmp_path / "test_gf2.h5", dn, "gf2")
    want = evaluate("EXP", rr={"gf2": reader})
    # {sensor: path}, {sensor: [paths]} and names mapped with sensors=.
    assert evaluate("EXP", rr={"gf2": str(path)}).rows == want.rows
    two = evaluate("EXP", rr={"gf2": [path, path]})
    assert two["gf2"]["n_rr"] == 4
    assert two["gf2"]["rr_q2n"] == pytest.approx(want["gf2"]["rr_q2n"], rel=1e-12)
    mine = evaluate("EXP", rr={"mine": path}, sensors={"mine": "gf2"})
    assert mine["mine"] == want["gf2"]
    # MultiSensorDataset, its evaluation_data(), load_sources() results.
    ds = MultiSensorDataset.for_evaluation({"gf2": path}, bands="native")
    assert evaluate("EXP", rr=ds).rows == want.rows
    assert evaluate("EXP", rr=ds.evaluation_data()).rows == want.rows
    loaded = load_sources({"gf2": reader})
    assert evaluate("EXP", rr=loaded).rows == want.rows
    # A single reader; a max_images cap; a centred crop (readers and arrays).
    assert evaluate("EXP", rr=reader).rows == want.rows
    one = evaluate("EXP", rr={"gf2": reader}, max_images=1)
    assert one["gf2"]["n_rr"] == 1
    crop = load_sources({"gf2": reader}, patch_size=32)["gf2"]
    assert crop.gt.shape == (2, 32, 32, 4) and crop.inputs["ms"].shape[1] == 8
    src = loaded["gf2"]
    arr_crop = load_sources({"gf2": (src.inputs, src.gt)}, patch_size=32)["gf2"]
    np.testing.assert_array_equal(arr_crop.gt, crop.gt)
    np.testing.assert_array_equal(arr_crop.inputs["ms"], crop.inputs["ms"])


def test_non_finite_output_gives_nan_row(gf2):
    with pytest.warns(UserWarning, match="NaN/inf"):
        table = evaluate(
            lambda ms, pan: np.full((len(ms), 64, 64, 4), np.nan),
            rr={"gf2": gf2[0]},
        )
    assert math.isnan(table["gf2"]["rr_q2n"])
    assert json.loads(table.to_json())["results"]["gf2"]["rr_q2n"] is None
    assert "| gf2 | - |" in table.to_markdown()


# ------------------------------------------------------------------ files


def test_csv_json_markdown_round_trip(gf2, tmp_path):
    table = evaluate(
        "EXP",
        rr={"gf2": gf2[0]},
        fr={"gf2": gf2[1]},
        per_image=True,
        metrics=["q2n", "sam", "ssim", "hqnr"],
    )
    assert table.columns == ["rr_q2n", "rr_sam", "rr_ssim", "fr_hqnr", "n_rr", "n_fr"]
    table.meta["note"] = "round trip"
    files = table.save(tmp_path / "out" / "res")
    assert set(files) == {"csv", "per_image_csv", "json", "md"}
    assert sorted(os.listdir(tmp_path / "out")) == [
        "res.csv",
        "res.json",
        "res.md",
        "res_per_image.csv",
    ]  # no temporary files left behind
    header = files["csv"].read_text().splitlines()[0]
    assert header == "name,rr_q2n,rr_sam,rr_ssim,fr_hqnr,n_rr,n_fr"

    back = EvaluationTable.from_csv(files["csv"])
    assert back.rows == table.rows
    per = EvaluationTable.from_csv(files["per_image_csv"])
    assert per.per_image == table.per_image and per.rows == table.rows
    js = EvaluationTable.from_json(files["json"])
    assert js.rows == table.rows and js.per_image == table.per_image
    assert js.meta == table.meta and js.index_name == "sensor"

    md = files["md"].read_text()
    assert md == table.to_markdown() + "\n"
    lines = md.splitlines()
    assert lines[0] == "| sensor | Q2n | SAM | SSIM | HQNR |"
    cells = lines[2].strip("|").split("|")
    assert cells[0].strip() == "gf2"
    assert float(cells[1]) == pytest.approx(table["gf2"]["rr_q2n"], abs=5e-5)
    assert cells[2].strip() == f"{table['gf2']['rr_sam']:.3f}"
    per_md = table.to_markdown(per_image=True).splitlines()
    assert per_md[0].startswith("| sensor | image |") and len(per_md) == 2 + 4
    # One file chosen by its suffix.
    only = table.save(tmp_path / "single.json")
    assert list(only) == ["json"] and (tmp_path / "single.json").is_file()


def test_merge_and_compare(gf2):
    a = EvaluationTable(
        {"wv3": {"rr_q2n": 0.9}, "gf2": {"rr_q2n": 0.8}}, meta={"x": 1, "y": 2}
    )
    b = EvaluationTable({"wv3": {"rr_q2n": 0.7}}, meta={"x": 1, "y": 3})
    c = EvaluationTable({"qb": {"rr_q2n": 0.6}})
    cmp = EvaluationTable.compare({"A": a, "B": b})
    assert cmp.names == ["wv3 / A", "wv3 / B", "gf2 / A"]
    assert cmp.meta == {"x": 1}
    merged = EvaluationTable.merge([a, c])
    assert merged.names == ["wv3", "gf2", "qb"]
    with pytest.raises(ValueError, match="appear twice"):
        EvaluationTable.merge([a, b])


def test_atomic_write_keeps_old_file_on_error(tmp_path):
    target = tmp_path / "t.md"
    write_atomic(target, "old\n")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("boom")
    assert target.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["t.md"]


# ----------------------------------------------------------------- errors


def test_errors(gf2, wv3):
    rr, fr = {"gf2": gf2[0]}, {"gf2": gf2[1]}
    with pytest.raises(ValueError, match="no data"):
        evaluate("EXP")
    with pytest.raises(ValueError, match="empty dict"):
        evaluate("EXP", rr={})
    with pytest.raises(ValueError, match="Unknown sensor 'nosuchsensor'"):
        evaluate("EXP", rr={"nosuchsensor": _arrays(gf2[0])})
    with pytest.raises(ValueError, match="sensors=.*'mine'"):
        evaluate("EXP", rr={"mine": "missing.h5"})
    with pytest.raises(ValueError, match="name no source"):
        evaluate("EXP", rr=rr, sensors={"wv3": "wv3"})
    with pytest.raises(ValueError, match="no ground truth"):
        evaluate("EXP", rr=fr)
    with pytest.raises(ValueError, match="Unknown classical method 'FOO'"):
        evaluate("FOO", rr=rr)
    with pytest.raises(ValueError, match="Unknown metric"):
        evaluate("EXP", rr=rr, metrics=["q2n", "nope"])
    with pytest.raises(ValueError, match="no FR metric"):
        evaluate("EXP", fr=fr, metrics=["q2n"])
    with pytest.raises(ValueError, match="Unsupported predictor"):
        evaluate(42, rr=rr)
    with pytest.raises(ValueError, match="batch_size"):
        evaluate("EXP", rr=rr, batch_size=0)
    with pytest.raises(
        ValueError,
        match=r"returned shape \(2, 32, 32, 4\).*"
        r"expected \(2, 64, 64, 4\)",
    ):
        evaluate(lambda ms, pan: np.zeros((len(ms), 32, 32, 4)), rr=rr)
    inputs, gt = _arrays(gf2[0])
    with pytest.raises(ValueError, match="ArrayReader"):
        evaluate("EXP", fr={"gf2": {k: v * 1023 for k, v in inputs.items()}})
    with pytest.raises(ValueError, match="pass reduced-resolution arrays as"):
        evaluate("EXP", rr={"gf2": dict(inputs, gt=gt)})
    with pytest.raises(ValueError, match="8 bands but sensor GF2 has 4"):
        full = load_sources({"wv3": wv3[0]})["wv3"]
        EvaluationSource("x", "gf2", full.inputs, full.gt)
    with pytest.raises(ValueError, match="'gt' has shape"):
        EvaluationSource("gf2", "gf2", inputs, gt[:, :32])
    with pytest.raises(ValueError, match="bands must be"):
        evaluate("EXP", rr=rr, bands="all")


def _arrays(reader):
    src = load_sources({reader.sensor.name.lower(): reader})[reader.sensor.name.lower()]
    return src.inputs, src.gt


def test_public_exports():
    assert kp.evaluate is evaluate
    assert kp.EvaluationTable is EvaluationTable
    assert kp.evaluation.load_sources is load_sources
    assert kp.evaluate_rr is evaluate_rr and kp.evaluate_fr is evaluate_fr
