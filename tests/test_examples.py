"""The example scripts run end to end (tiny settings, subprocesses)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
# The plumbing is model-independent; PNN compiles fast (PanTiny's TF graph
# trace, and under JAX one XLA compilation per input shape, would cost most
# of the CI budget). PanTiny's own fit is tested in test_pantiny.py and, with
# the paper's recipe on MultiSensorDataset, in test_distribution.py.
MODEL = "pnn"


def _run(args, cwd):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, cwd=cwd
    )
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    return proc.stdout


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("train_multi")
    stdout = _run(
        [
            str(ROOT / "examples" / "train_multi.py"),
            "--epochs=1",
            "--steps_per_epoch=2",
            "--batch_size=2",
            "--patch_size=32",
            "--eval_samples=2",
            "--test_images=1",
            "--verbose=0",
            f"--model={MODEL}",
            f"--output_dir={out}",
        ],
        cwd=out,
    )
    return out, stdout


def test_train_multi_outputs(trained):
    out, stdout = trained
    assert f"Final scores of {MODEL}" in stdout
    results = json.loads((out / "results.json").read_text())["results"]
    assert set(results) == {"wv2", "wv3", "gf2"}
    for row in results.values():
        for key in ("rr_q2n", "rr_sam", "rr_ergas", "rr_scc", "rr_psnr"):
            assert np.isfinite(row[key])
        for key in ("fr_d_lambda", "fr_d_s", "fr_qnr", "fr_hqnr"):
            assert 0.0 <= row[key] <= 1.0
    header = (out / "results.csv").read_text().splitlines()[0].split(",")
    assert header[:3] == ["name", "rr_q2n", "rr_sam"] and "fr_hqnr" in header
    md = (out / "results.md").read_text()
    assert md.startswith("| sensor | Q2n | SAM |") and "| gf2 |" in md
    history = (out / "history.csv").read_text().splitlines()
    assert "fr_hqnr" in history[0] and len(history) == 2
    assert (out / "best.keras").is_file() and (out / "last.keras").is_file()
    assert (out / "saved_model" / "saved_model.pb").is_file()
    assert not (out / "backup").exists()  # removed after a finished run


def test_serve_writes_georeferenced_geotiff(trained, tmp_path):
    import tifffile

    out, _ = trained
    rng = np.random.default_rng(0)
    ms = rng.integers(0, 2047, (24, 20, 8)).astype(np.uint16)
    pan = rng.integers(0, 2047, (96, 80)).astype(np.uint16)
    geo = [
        (33550, 12, 3, (0.5, 0.5, 0.0), True),
        (33922, 12, 6, (0.0, 0.0, 0.0, 500000.0, 4000000.0, 0.0), True),
        (34735, 3, 8, (1, 1, 0, 1, 3072, 0, 1, 32633), True),
    ]
    tifffile.imwrite(
        tmp_path / "ms.tif", ms, photometric="minisblack", planarconfig="contig"
    )
    tifffile.imwrite(tmp_path / "pan.tif", pan, extratags=geo)
    _run(
        [
            str(ROOT / "examples" / "serve.py"),
            f"--saved_model={out / 'saved_model'}",
            f"--ms={tmp_path / 'ms.tif'}",
            f"--pan={tmp_path / 'pan.tif'}",
            "--sensor=wv3",
            "--tile=64",
            "--overlap=16",
            f"--output={tmp_path / 'fused.tif'}",
        ],
        cwd=tmp_path,
    )
    with tifffile.TiffFile(tmp_path / "fused.tif") as tif:
        page = tif.pages[0]
        assert page.shape == (96, 80, 4) and page.dtype == np.uint16
        tags = {t.code: t.value for t in page.tags.values()}
    assert tags[33550] == (0.5, 0.5, 0.0)
    assert tags[33922][3:5] == (500000.0, 4000000.0)
    assert tuple(tags[34735]) == (1, 1, 0, 1, 3072, 0, 1, 32633)
    assert (tmp_path / "fused.png").is_file()


def test_serve_scores_saved_model_like_the_keras_model(trained, tmp_path):
    """--test_rr/--test_fr: the SavedModel's table equals train_multi's."""
    from keras_pansharp.data import synthetic

    out, _ = trained
    paths = synthetic.ensure_datasets()
    stdout = _run(
        [
            str(ROOT / "examples" / "serve.py"),
            f"--saved_model={out / 'saved_model'}",
            f"--test_rr=wv3={paths['test_rr']['wv3']}",
            f"--test_fr=wv3={paths['test_fr']['wv3']}",
            "--test_images=1",
            f"--scores={tmp_path / 'scores'}",
        ],
        cwd=tmp_path,
    )
    assert "| wv3 |" in stdout
    for ext in ("csv", "json", "md"):
        assert (tmp_path / f"scores.{ext}").is_file()
    served = json.loads((tmp_path / "scores.json").read_text())["results"]["wv3"]
    keras_row = json.loads((out / "results.json").read_text())["results"]["wv3"]
    assert served.keys() == keras_row.keys()
    for key, value in keras_row.items():
        assert served[key] == pytest.approx(value, rel=1e-3, abs=1e-5), key


_INTERRUPT_AFTER_FIRST_BACKUP = """
import keras

# CSVLogger is train_multi's last callback: once it has run, epoch 1 is
# fully recorded (backup, checkpoint, history). Crash right there.
_orig = keras.callbacks.CSVLogger.on_epoch_end


def _on_epoch_end(self, epoch, logs=None):
    _orig(self, epoch, logs)
    if epoch == 0:
        raise KeyboardInterrupt("simulated interruption after epoch 1")


keras.callbacks.CSVLogger.on_epoch_end = _on_epoch_end
"""


def test_train_multi_resumes_after_interruption(tmp_path):
    """Killed after epoch 1, the same command resumes at epoch 2 of 2."""
    out = tmp_path / "run"
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_INTERRUPT_AFTER_FIRST_BACKUP)
    args = [
        str(ROOT / "examples" / "train_multi.py"),
        "--epochs=2",
        "--steps_per_epoch=2",
        "--batch_size=2",
        "--patch_size=32",
        "--eval_samples=2",
        "--test_images=1",
        "--verbose=2",
        "--noexport",
        f"--model={MODEL}",
        f"--output_dir={out}",
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = os.pathsep.join([str(hook), str(ROOT)])
    crashed = subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, cwd=tmp_path
    )
    assert crashed.returncode != 0
    assert "simulated interruption" in crashed.stderr
    assert (out / "backup").is_dir()
    assert not (out / "results.json").exists()

    stdout = _run(args, cwd=tmp_path)
    assert "Epoch 2/2" in stdout and "Epoch 1/2" not in stdout
    history = (out / "history.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in history[1:]] == ["0", "1"]
    assert (out / "results.json").is_file()
    assert not (out / "backup").exists()


@pytest.mark.parametrize("mode", ["--adapt", "--calibrate"])
def test_serve_pretrained_with_adapt(tmp_path, mode):
    import tifffile

    rng = np.random.default_rng(1)
    pan = rng.integers(200, 1800, (96, 96)).astype(np.uint16)
    ms = np.stack([pan[2::4, 2::4] // (b + 2) + 50 for b in range(4)], -1)
    tifffile.imwrite(
        tmp_path / "ms.tif",
        ms.astype(np.uint16),
        photometric="minisblack",
        planarconfig="contig",
    )
    tifffile.imwrite(tmp_path / "pan.tif", pan)
    result = _run(
        [
            str(ROOT / "examples" / "serve.py"),
            "--model=pantiny_multisensor",
            mode,
            "--adapt_steps=2",
            f"--ms={tmp_path / 'ms.tif'}",
            f"--pan={tmp_path / 'pan.tif'}",
            "--sensor=qb",
            "--tile=96",
            f"--output={tmp_path / 'fused.tif'}",
        ],
        cwd=tmp_path,
    )
    # The preset calibrates itself (serve.py's --calibrate adds nothing).
    expected = "HQNR" if mode == "--adapt" else "calibrates its details on the scene"
    assert expected in result
    fused = tifffile.imread(tmp_path / "fused.tif")
    assert fused.shape == (96, 96, 4) and fused.dtype == np.uint16
