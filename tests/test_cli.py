"""The `keras-pansharp` command (`keras_pansharp.cli`)."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from keras_pansharp.cli import main, run
from keras_pansharp.data.geotiff import GeoTiffReader
from keras_pansharp.metrics import evaluate_fr, evaluate_rr
from keras_pansharp.models.pantiny import PanTiny
from keras_pansharp.models.pnn import PNN
from keras_pansharp.scene import predict_scene
from tests.test_geotiff import ORIGIN, geo_tags, write_geotiff


@pytest.fixture
def scene(tmp_path):
    """A georeferenced QB-like pair (MS 32 x 32 x 4, PAN 128 x 128, 11-bit DN)."""
    from keras_pansharp.data import synthetic

    sc = synthetic.make_scene("qb", size=128, seed=0)
    ms = np.clip(sc.ms, 0, 2047).astype(np.uint16)
    pan = np.clip(sc.pan, 0, 2047).astype(np.uint16)
    ms_path = write_geotiff(tmp_path / "ms.tif", ms, tags=geo_tags(2.0))
    pan_path = write_geotiff(
        tmp_path / "pan.tif", pan, layout="striped", tags=geo_tags(0.5)
    )
    return ms, pan, str(ms_path), str(pan_path)


@pytest.fixture
def pnn_file(tmp_path):
    model = PNN(bands=4)
    path = tmp_path / "pnn.keras"
    model.save(path)
    return model, str(path)


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _fused_ref(model, ms, pan, **kw):
    fused = predict_scene(model, ms, pan, max_value=2047.0, verbose=0, **kw)
    return np.clip(np.rint(fused), 0, 2047).astype(np.uint16)


# --------------------------------------------------------------------------
# help
# --------------------------------------------------------------------------


@pytest.mark.parametrize("command", [None, "fuse", "evaluate", "prepare", "info"])
def test_help(capsys, command):
    argv = ["--help"] if command is None else [command, "--help"]
    code, out, _ = run_cli(capsys, *argv)
    assert code == 0
    assert out.startswith("usage: keras-pansharp" + (f" {command}" if command else ""))


def test_console_script_help():
    exe = shutil.which("keras-pansharp")
    if exe is None:
        pytest.skip("console script not installed (pip install -e .)")
    res = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    for command in ("fuse", "evaluate", "prepare", "info"):
        assert command in res.stdout


def test_run_exits_with_status_2(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(
        sys, "argv", ["keras-pansharp", "info", str(tmp_path / "x.tif")]
    )
    with pytest.raises(SystemExit) as exit_info:
        run()
    assert exit_info.value.code == 2
    assert "x.tif: file not found" in capsys.readouterr().err


# --------------------------------------------------------------------------
# info
# --------------------------------------------------------------------------


def test_info(capsys, scene):
    _, _, ms_path, pan_path = scene
    code, out, _ = run_cli(capsys, "info", ms_path, pan_path)
    assert code == 0
    assert "32 x 32 pixels, 4 band(s)" in out and "EPSG:32633" in out
    assert "tiled 16 x 16" in out and "striped, 5 row(s)" in out
    assert "QB/IKONOS" in out and "panchromatic" in out
    code, out, _ = run_cli(capsys, "info", ms_path, "--format", "json")
    info = json.loads(out)
    assert info["bands"] == 4 and info["pixel_size"] == [2.0, 2.0]
    assert info["origin"] == list(ORIGIN) and info["dtype"] == "uint16"


# --------------------------------------------------------------------------
# fuse
# --------------------------------------------------------------------------


def test_fuse_keras_file(capsys, scene, pnn_file, tmp_path):
    ms, pan, ms_path, pan_path = scene
    model, model_path = pnn_file
    out = tmp_path / "fused.tif"
    code, _, err = run_cli(
        capsys, "fuse", model_path, "--ms", ms_path, "--pan", pan_path,
        "--sensor", "qb", "--output", out, "--tile", 64, "--batch-size", 3,
    )  # fmt: skip
    assert code == 0, err
    assert "Wrote" in err and "blended tiling" in err
    ref = _fused_ref(model, ms, pan, tile=64, overlap=32, batch_size=3)
    np.testing.assert_array_equal(tifffile.imread(out), ref)
    with GeoTiffReader(out) as r, GeoTiffReader(pan_path) as p:
        assert r.geo.tags == p.geo.tags and r.compression == "deflate"


def test_fuse_preset_rgbn_of_8_bands(capsys, tmp_path, rng):
    ms = rng.integers(0, 2048, (16, 16, 8)).astype(np.uint16)
    pan = rng.integers(0, 2048, (64, 64)).astype(np.uint16)
    ms_path = write_geotiff(tmp_path / "ms.tif", ms, tags=geo_tags(2.0))
    pan_path = write_geotiff(tmp_path / "pan.tif", pan, tags=geo_tags(0.5))
    out = tmp_path / "fused.tif"
    # --cache-mb 0: every activation kept between the exact passes goes to
    # the temporary file; the output is the same.
    code, _, err = run_cli(
        capsys, "fuse", "pantiny_multisensor", "--ms", ms_path, "--pan", pan_path,
        "--sensor", "wv3", "--bands", "rgbn", "-o", out, "--quiet", "--cache-mb",
        "0", "--no-calibrate",
    )  # fmt: skip
    assert code == 0, err
    assert err == ""  # --quiet
    model = PanTiny.from_preset("pantiny_multisensor")
    ref = _fused_ref(model, ms[..., [1, 2, 4, 6]], pan)
    np.testing.assert_array_equal(tifffile.imread(out), ref)


def test_fuse_adapt(capsys, scene, pnn_file, tmp_path):
    _, _, ms_path, pan_path = scene
    _, model_path = pnn_file
    out = tmp_path / "fused.tif"
    code, _, err = run_cli(
        capsys, "fuse", model_path, "--ms", ms_path, "--pan", pan_path,
        "--sensor", "qb", "-o", out, "--tile", 64, "--adapt", "--adapt-steps", 1,
        "--adapt-crop", 64, "--adapt-time-limit", 0,
    )  # fmt: skip
    assert code == 0, err
    assert "Adapting on a 64 x 64 PAN crop for 1 steps" in err and out.is_file()
    assert "1 step," in err  # the summary: steps run


def test_fuse_adapt_defaults_are_adapts():
    # The parser keeps keras out of start-up, so it repeats adapt's defaults.
    from keras_pansharp.adaptation import ADAPT_DEFAULTS
    from keras_pansharp.cli import build_parser

    args = build_parser().parse_args(
        ["fuse", "m", "--ms", "a", "--pan", "b", "--sensor", "qb", "-o", "x"]
    )
    assert args.adapt_time_limit == ADAPT_DEFAULTS["time_limit"]
    assert args.adapt_steps == ADAPT_DEFAULTS["steps"]


def test_fuse_calibrate(capsys, scene, pnn_file, tmp_path):
    import keras_pansharp as kp

    ms, pan, ms_path, pan_path = scene
    out = tmp_path / "fused.tif"
    # The preset calibrates itself: one set of gains for the scene, chosen
    # on its centred crop (at most 1024^2: here the whole scene).
    preset = PanTiny.from_preset("pantiny_multisensor")
    code, _, err = run_cli(
        capsys, "fuse", "pantiny_multisensor", "--ms", ms_path, "--pan", pan_path,
        "--sensor", "qb", "-o", out,
    )  # fmt: skip
    assert code == 0, err
    assert "The model calibrates its details on the scene itself" in err
    assert "Detail gains" not in err
    own = kp.calibration.scene_calibrated_model(preset, ms, pan, 2047.0)
    np.testing.assert_array_equal(tifffile.imread(out), _fused_ref(own, ms, pan))
    # --calibrate: the gains of the --adapt-crop crop, for the whole scene.
    code, _, err = run_cli(
        capsys, "fuse", "pantiny_multisensor", "--ms", ms_path, "--pan", pan_path,
        "--sensor", "qb", "-o", out, "--adapt-crop", 64, "--calibrate",
        "--overwrite",
    )  # fmt: skip
    assert code == 0, err
    assert "Detail gains on a 64 x 64 PAN crop: " in err
    cal = kp.calibrate_detail_gain(
        preset, ms[8:24, 8:24], pan[32:96, 32:96], sensor="qb", crop=None
    )  # fmt: skip
    np.testing.assert_array_equal(tifffile.imread(out), _fused_ref(cal.model, ms, pan))
    # A model without a residual convolution cannot be calibrated.
    code, _, err = run_cli(
        capsys, "fuse", pnn_file[1], "--ms", ms_path, "--pan", pan_path,
        "--sensor", "qb", "-o", tmp_path / "pnn.tif", "--calibrate", "--quiet",
    )  # fmt: skip
    assert code == 2 and "adds no residual convolution" in err
    assert not (tmp_path / "pnn.tif").exists()
    # Off by default for it.
    code, _, err = run_cli(
        capsys, "fuse", pnn_file[1], "--ms", ms_path, "--pan", pan_path,
        "--sensor", "qb", "-o", tmp_path / "pnn.tif",
    )  # fmt: skip
    assert code == 0 and "Detail gains" not in err


def _bad_inputs(tmp_path, case):
    """(ms, pan, extra args) for each error case."""
    ms = np.ones((16, 16, 4), np.uint16)
    pan = np.ones((64, 64), np.uint16)
    pan_tags = geo_tags(0.5)
    sensor = "qb"
    extra = []
    if case == "ratio":
        pan = np.ones((60, 64), np.uint16)
    elif case == "extent":
        pan_tags = geo_tags(0.5, (ORIGIN[0] + 10.0, ORIGIN[1]))
    elif case == "crs":
        pan_tags = geo_tags(0.5, epsg=32634)
    elif case == "model_bands":
        ms = np.ones((16, 16, 8), np.uint16)
        sensor = "wv3"
    elif case == "sensor_bands":
        sensor = "wv3"
    elif case == "bad_bands":
        extra = ["--bands", "0,1,9,2"]
    ms_path = write_geotiff(tmp_path / "ms.tif", ms, tags=geo_tags(2.0))
    pan_path = write_geotiff(tmp_path / "pan.tif", pan, tags=pan_tags)
    return str(ms_path), str(pan_path), sensor, extra


@pytest.mark.parametrize(
    "case,message",
    [
        ("missing", "missing.tif: file not found"),
        ("exists", "exists; pass --overwrite"),
        ("ratio", "must be 4x the MS size"),
        ("extent", "do not cover the same extent"),
        ("crs", "different coordinate reference systems"),
        (
            "model_bands",
            "takes 4 bands but 8 MS bands were selected (add --bands rgbn)",
        ),
        ("sensor_bands", "has 4 bands but sensor WV3 has 8"),
        ("bad_bands", "out of range"),
        ("unknown_model", "unknown model 'nomodel'"),
        ("missing_model", "model file gone.keras not found"),
    ],
)
def test_fuse_errors(capsys, tmp_path, pnn_file, case, message):
    ms_path, pan_path, sensor, extra = _bad_inputs(tmp_path, case)
    model = pnn_file[1]
    out = tmp_path / "out.tif"
    if case == "missing":
        ms_path = str(tmp_path / "missing.tif")
    elif case == "exists":
        out.write_bytes(b"keep")
    elif case == "unknown_model":
        model = "nomodel"
    elif case == "missing_model":
        model = "gone.keras"
    code, _, err = run_cli(
        capsys, "fuse", model, "--ms", ms_path, "--pan", pan_path, "--sensor",
        sensor, "-o", out, "--quiet", *extra,
    )  # fmt: skip
    assert code == 2
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("keras-pansharp fuse: error: ")
    if case == "exists":
        assert out.read_bytes() == b"keep"
    else:
        assert not out.exists()


def test_usage_error_exit_code(capsys):
    code, _, err = run_cli(capsys, "fuse", "--ms", "a.tif")
    assert code == 2 and "required" in err
    code, _, _ = run_cli(capsys, "fuse", "m", "--ms", "a", "--pan", "b", "--sensor",
                         "qb", "-o", "x", "--exact", "--blend")  # fmt: skip
    assert code == 2
    assert run_cli(capsys)[0] == 2  # no command
    for bad in ("-1", "inf", "lots"):
        code, _, err = run_cli(capsys, "fuse", "m", "--ms", "a", "--pan", "b",
                               "--sensor", "qb", "-o", "x", "--cache-mb", bad)  # fmt: skip
        assert code == 2 and "--cache-mb" in err
        code, _, err = run_cli(capsys, "fuse", "m", "--ms", "a", "--pan", "b",
                               "--sensor", "qb", "-o", "x", "--adapt-time-limit",
                               bad)  # fmt: skip
        assert code == 2 and "--adapt-time-limit" in err


# --------------------------------------------------------------------------
# evaluate
# --------------------------------------------------------------------------


def test_evaluate_fr_json_and_csv(capsys, scene, tmp_path):
    ms, pan, ms_path, pan_path = scene
    from keras_pansharp.signal import interp23tap

    fused = np.clip(np.rint(interp23tap(ms.astype(float))), 0, 2047).astype(np.uint16)
    fused_path = write_geotiff(tmp_path / "fused.tif", fused, tags=geo_tags(0.5))
    want = evaluate_fr(
        fused.astype(float), ms.astype(float), pan.astype(float), sensor="qb"
    )
    args = ["evaluate", "--fused", fused_path, "--ms", ms_path, "--pan", pan_path]
    code, out, err = run_cli(capsys, *args, "--sensor", "qb")
    assert code == 0, err
    got = json.loads(out)
    assert got["mode"] == "fr" and got["sensor"] == "QB"
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-12, abs=1e-15)
    code, out, _ = run_cli(capsys, *args, "--sensor", "qb", "--format", "csv")
    (row,) = csv.DictReader(io.StringIO(out))
    assert float(row["hqnr"]) == pytest.approx(want["hqnr"], rel=1e-12)
    # --output: atomic, never overwritten without --overwrite.
    target = tmp_path / "scores.json"
    assert run_cli(capsys, *args, "--sensor", "qb", "-o", target)[0] == 0
    assert json.loads(target.read_text())["hqnr"] == pytest.approx(want["hqnr"])
    target.write_text("keep")
    code, _, err = run_cli(capsys, *args, "--sensor", "qb", "-o", target)
    assert code == 2 and "--overwrite" in err and target.read_text() == "keep"
    assert run_cli(capsys, *args, "--sensor", "qb", "-o", target, "--overwrite")[0] == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_evaluate_rr(capsys, tmp_path, rng):
    gt = rng.integers(100, 2000, (64, 64, 4)).astype(np.uint16)
    noise = rng.integers(-50, 50, gt.shape)
    fused = np.clip(gt + noise, 0, 2047).astype(np.uint16)
    gt_path = write_geotiff(tmp_path / "gt.tif", gt)
    fused_path = write_geotiff(tmp_path / "fused.tif", fused)
    code, out, err = run_cli(
        capsys, "evaluate", "--fused", fused_path, "--reference", gt_path,
        "--sensor", "qb",
    )  # fmt: skip
    assert code == 0, err
    got = json.loads(out)
    want = evaluate_rr(fused.astype(float), gt.astype(float), sensor="qb")
    assert got["mode"] == "rr"
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-12)


def test_evaluate_errors(capsys, scene, tmp_path):
    _, _, ms_path, pan_path = scene
    args = ["evaluate", "--fused", ms_path, "--sensor", "qb"]
    code, _, err = run_cli(capsys, *args, "--ms", ms_path, "--reference", ms_path)
    assert code == 2 and "not both" in err
    code, _, err = run_cli(capsys, *args, "--ms", ms_path)
    assert code == 2 and "both --ms and --pan" in err
    code, _, err = run_cli(capsys, *args, "--ms", ms_path, "--pan", pan_path)
    assert code == 2 and "is 32 x 32 but the PAN" in err


def _fr_files(tmp_path, size=256, bands="qb", fused_tags=None):
    """A synthetic MS/PAN pair and a fused image (interp23tap + PAN detail)."""
    from keras_pansharp.data import synthetic
    from keras_pansharp.signal import interp23tap

    sc = synthetic.make_scene(bands, size=size, seed=1)
    ms = np.clip(sc.ms, 0, 2047).astype(np.uint16)
    pan = np.clip(sc.pan, 0, 2047).astype(np.uint16)
    lms = interp23tap(ms.astype(float))
    detail = pan.astype(float) - pan.astype(float).mean()
    fused = np.clip(np.rint(lms + 0.3 * detail[..., None]), 0, 2047).astype(np.uint16)
    ms_path = write_geotiff(tmp_path / "ms.tif", ms, tags=geo_tags(2.0))
    pan_path = write_geotiff(
        tmp_path / "pan.tif", pan, layout="striped", tags=geo_tags(0.5)
    )
    fused_path = write_geotiff(
        tmp_path / "fused.tif",
        fused,
        tags=geo_tags(0.5) if fused_tags is None else fused_tags,
        tile=(32, 32),
    )
    return ms, pan, fused, str(ms_path), str(pan_path), str(fused_path)


def _assert_scores(got, want):
    assert set(want) <= set(got)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-11, abs=1e-13), key


def test_evaluate_fr_windowed_equals_in_memory(capsys, tmp_path, monkeypatch):
    ms, pan, fused, ms_path, pan_path, fused_path = _fr_files(tmp_path)
    want = evaluate_fr(
        fused.astype(float), ms.astype(float), pan.astype(float), sensor="qb"
    )
    reads = []
    orig = GeoTiffReader._read

    def spy(self, r0, r1, c0, c1, bands):
        reads.append((r1 - r0) * (c1 - c0))
        return orig(self, r0, r1, c0, c1, bands)

    monkeypatch.setattr(GeoTiffReader, "_read", spy)
    code, out, err = run_cli(
        capsys, "evaluate", "--fused", fused_path, "--ms", ms_path, "--pan",
        pan_path, "--sensor", "qb", "--window", 64,
    )  # fmt: skip
    monkeypatch.undo()
    assert code == 0, err
    assert "in windows of 64 pixels" in err
    _assert_scores(json.loads(out), want)
    # Window by window (16 windows of 64^2 plus halos): never the whole scene.
    assert len(reads) > 16 and max(reads) < 256 * 256 // 2
    # The default window (one window here) gives the same numbers.
    code, out, err = run_cli(
        capsys, "evaluate", "--fused", fused_path, "--ms", ms_path, "--pan",
        pan_path, "--sensor", "qb", "--quiet",
    )  # fmt: skip
    assert code == 0 and err == ""
    _assert_scores(json.loads(out), want)


def test_evaluate_fr_rgbn_of_8_bands(capsys, tmp_path, rng):
    from keras_pansharp.sensors import get_sensor
    from keras_pansharp.signal import interp23tap

    ms = rng.integers(100, 2000, (32, 32, 8)).astype(np.uint16)
    pan = rng.integers(100, 2000, (128, 128)).astype(np.uint16)
    rgbn = ms[..., [1, 2, 4, 6]]
    fused = np.clip(np.rint(interp23tap(rgbn.astype(float))), 0, 2047)
    fused = fused.astype(np.uint16)
    ms_path = write_geotiff(tmp_path / "ms.tif", ms, tags=geo_tags(2.0))
    pan_path = write_geotiff(tmp_path / "pan.tif", pan, tags=geo_tags(0.5))
    fused_path = write_geotiff(tmp_path / "fused.tif", fused, tags=geo_tags(0.5))
    args = ["evaluate", "--fused", fused_path, "--ms", ms_path, "--pan", pan_path]
    code, out, err = run_cli(
        capsys, *args, "--sensor", "wv3", "--bands", "rgbn", "--window", 64
    )
    assert code == 0, err
    got = json.loads(out)
    assert got["sensor"] == "WV3_RGBN" and got["bands"] == [1, 2, 4, 6]
    want = evaluate_fr(
        fused.astype(float),
        rgbn.astype(float),
        pan.astype(float),
        sensor=get_sensor("wv3").rgbn(),
    )
    _assert_scores(got, want)
    code, _, err = run_cli(capsys, *args, "--sensor", "wv3")
    assert code == 2
    assert "has 4 bands but 8 bands of" in err and "(add --bands rgbn)" in err


@pytest.mark.parametrize("dim_cut,window", [(0, 32), (21, 64), (5, 1024)])
def test_evaluate_rr_windowed_equals_in_memory(capsys, tmp_path, rng, dim_cut, window):
    # 150 x 120: not a multiple of the 32-pixel blocks (Q2n's mirror padding).
    gt = rng.integers(100, 2000, (150, 120, 4)).astype(np.uint16)
    noise = rng.integers(-80, 80, gt.shape)
    fused = np.clip(gt + noise, 0, 2047).astype(np.uint16)
    gt_path = write_geotiff(tmp_path / "gt.tif", gt, layout="striped")
    fused_path = write_geotiff(tmp_path / "fused.tif", fused)
    code, out, err = run_cli(
        capsys, "evaluate", "--fused", fused_path, "--reference", gt_path,
        "--sensor", "qb", "--dim-cut", dim_cut, "--window", window, "--format",
        "csv",
    )  # fmt: skip
    assert code == 0, err
    (row,) = csv.DictReader(io.StringIO(out))
    assert row["mode"] == "rr" and row["bands"] == "0 1 2 3"
    want = evaluate_rr(
        fused.astype(float), gt.astype(float), sensor="qb", dim_cut=dim_cut
    )
    _assert_scores({k: float(v) for k, v in row.items() if k in want}, want)


def test_evaluate_normalized_files(capsys, tmp_path, rng):
    gt = rng.integers(100, 2000, (64, 64, 4)).astype(np.uint16)
    fused = np.clip(gt + rng.integers(-50, 50, gt.shape), 0, 2047).astype(np.uint16)
    gt01, fused01 = (x.astype(np.float32) / 2047 for x in (gt, fused))
    gt_path = write_geotiff(tmp_path / "gt.tif", gt01)
    fused_path = write_geotiff(tmp_path / "fused.tif", fused01)
    code, out, err = run_cli(
        capsys, "evaluate", "--fused", fused_path, "--reference", gt_path,
        "--sensor", "qb", "--normalized",
    )  # fmt: skip
    assert code == 0, err
    want = evaluate_rr(
        fused01.astype(float), gt01.astype(float), sensor="qb", normalized=True
    )
    _assert_scores(json.loads(out), want)


@pytest.mark.parametrize(
    "case,message",
    [
        ("missing", "missing.tif: file not found"),
        ("fused_bands", "has 3 bands but 4 bands of"),
        ("fused_size", "is 64 x 128 but the PAN"),
        ("fused_extent", "do not cover the same extent"),
        ("fused_crs", "different coordinate reference systems"),
        ("fused_pixel", "not the same grid"),
        ("ms_pan_extent", "do not cover the same extent"),
        ("ms_pan_ratio", "must be 4x the MS size"),
        ("scale", "looks normalised to [0, 1]"),
        ("normalized_dn", "--normalized but the inputs look like digital numbers"),
        ("rr_size", "but the reference"),
        ("rr_extent", "do not cover the same extent"),
        ("window", "window must be at least 32"),
        ("exists", "exists; pass --overwrite"),
    ],
)
def test_evaluate_errors_one_line(capsys, tmp_path, case, message):
    ms, pan, fused, ms_path, pan_path, fused_path = _fr_files(tmp_path, size=128)
    fr = ["--ms", ms_path, "--pan", pan_path]
    extra = []
    out = tmp_path / "scores.json"
    shifted = (ORIGIN[0] + 10.0, ORIGIN[1])
    if case == "missing":
        fused_path = str(tmp_path / "missing.tif")
    elif case == "fused_bands":
        fused_path = write_geotiff(tmp_path / "f3.tif", fused[..., :3])
    elif case == "fused_size":
        fused_path = write_geotiff(tmp_path / "f.tif", fused[:, :64])
    elif case == "fused_extent":
        fused_path = write_geotiff(
            tmp_path / "f.tif", fused, tags=geo_tags(0.5, shifted)
        )
    elif case == "fused_crs":
        fused_path = write_geotiff(
            tmp_path / "f.tif", fused, tags=geo_tags(0.5, epsg=32634)
        )
    elif case == "fused_pixel":
        fused_path = write_geotiff(tmp_path / "f.tif", fused, tags=geo_tags(0.25))
    elif case == "ms_pan_extent":
        pan_path = write_geotiff(tmp_path / "p.tif", pan, tags=geo_tags(0.5, shifted))
        fr = ["--ms", ms_path, "--pan", pan_path]
    elif case == "ms_pan_ratio":
        pan_path = write_geotiff(tmp_path / "p.tif", pan[:120], tags=geo_tags(0.5))
        fr = ["--ms", ms_path, "--pan", pan_path]
    elif case == "scale":
        fused_path = write_geotiff(
            tmp_path / "f.tif", fused.astype(np.float32) / 2047, tags=geo_tags(0.5)
        )
    elif case == "normalized_dn":
        extra = ["--normalized"]
    elif case == "rr_size":
        fr = ["--reference", write_geotiff(tmp_path / "gt.tif", fused[:96])]
    elif case == "rr_extent":
        fr = [
            "--reference",
            write_geotiff(tmp_path / "gt.tif", fused, tags=geo_tags(0.5, shifted)),
        ]
    elif case == "window":
        extra = ["--window", 16]
    elif case == "exists":
        out.write_text("keep")
    code, stdout, err = run_cli(
        capsys, "evaluate", "--fused", fused_path, *fr, "--sensor", "qb", "-o",
        out, "--quiet", *extra,
    )  # fmt: skip
    assert code == 2, err
    assert message in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("keras-pansharp evaluate: error: ")
    if case == "scale":
        assert "f.tif looks normalised" in err and "ms.tif" in err
    if case == "exists":
        assert out.read_text() == "keep"
    else:
        assert not out.exists()
    assert stdout == ""


# --------------------------------------------------------------------------
# prepare
# --------------------------------------------------------------------------


def test_prepare(capsys, scene, tmp_path):
    import h5py

    _, _, ms_path, pan_path = scene
    out = tmp_path / "train.h5"
    code, out_text, err = run_cli(
        capsys, "prepare", "--ms", ms_path, "--pan", pan_path, "--sensor", "qb",
        "--out", out, "--patch-size", 16,
    )  # fmt: skip
    assert code == 0, err
    assert "RR patches" in out_text
    with h5py.File(out) as f:
        assert set(f) >= {"gt", "ms", "lms", "pan"}
    code, _, err = run_cli(
        capsys, "prepare", "--ms", ms_path, "--pan", pan_path, "--sensor", "qb",
        "--out", out,
    )  # fmt: skip
    assert code == 2 and "error" in err
