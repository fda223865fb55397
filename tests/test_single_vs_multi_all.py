"""`benchmarks/single_vs_multi_all.py`: collecting per-model runs into one table.

The runs themselves train for minutes to hours per model (outside CI); these
tests check the collection on result files written the way
`examples/single_vs_multi.py` writes them (`EvaluationTable.save`).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from keras_pansharp.evaluation import EvaluationTable

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str = "single_vs_multi_all"):
    spec = importlib.util.spec_from_file_location(
        name, ROOT / "benchmarks" / "single_vs_multi_all.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return _load()


def test_importing_adds_no_absl_flags():
    # absl flags are global: other benchmark modules loaded by the tests
    # define their own (bench_scene.py has "models"), so importing this one
    # must define none.
    from absl import flags

    before = set(flags.FLAGS)
    _load("single_vs_multi_all_again")
    assert set(flags.FLAGS) == before


def _scores(qnr, hqnr, q2n):
    return {"fr_qnr": qnr, "fr_hqnr": hqnr, "rr_q2n": q2n, "rr_sam": 3.0}


def _write_run(folder: Path, rows: dict, model: str) -> None:
    table = EvaluationTable(rows, meta={"model": model, "steps": {"joint": 8}})
    table.index_name = "sensor / method"
    table.save(folder / "single_vs_multi")


@pytest.fixture
def runs(tmp_path):
    _write_run(
        tmp_path / "pnn",
        {
            "wv3 / single": _scores(0.80, 0.70, 0.60),
            "wv3 / joint": _scores(0.85, 0.65, 0.60),
            "wv3 / EXP": _scores(0.90, 0.88, 0.64),
            "qb / single": _scores(0.90, 0.80, 0.90),
            "qb / joint": _scores(0.91, 0.81, 0.95),
            "qb / EXP": _scores(0.91, 0.89, 0.75),
        },
        "pnn",
    )
    _write_run(
        tmp_path / "dicnn",
        {
            "wv3 / single": _scores(0.70, 0.60, 0.50),
            "wv3 / joint": _scores(0.60, 0.50, 0.55),
            "qb / single": _scores(0.90, 0.80, 0.90),
            "qb / joint": _scores(0.80, 0.90, 0.85),
        },
        "dicnn",
    )
    return tmp_path


def test_collect_counts_joint_wins_per_score(bench, runs):
    names = ("pnn", "dicnn", "sfdi")
    summary = bench.collect({m: runs / m for m in names})
    assert summary["missing"] == ["sfdi"]
    # Ties count as "not higher" (wv3 Q2n of pnn).
    assert summary["wins"]["pnn"] == {"QNR": [2, 2], "HQNR": [1, 2], "Q2n": [1, 2]}
    assert summary["wins"]["dicnn"] == {"QNR": [0, 2], "HQNR": [1, 2], "Q2n": [1, 2]}
    # Mean of joint - single over the sensors: QNR (0.05 + 0.01) / 2.
    assert summary["gains"]["pnn"] == pytest.approx(
        {"QNR": 0.03, "HQNR": -0.02, "Q2n": 0.025}
    )
    assert [(r["model"], r["sensor"]) for r in summary["rows"]] == [
        ("pnn", "wv3"),
        ("pnn", "qb"),
        ("dicnn", "wv3"),
        ("dicnn", "qb"),
    ]
    assert summary["rows"][1]["joint"] == {"QNR": 0.91, "HQNR": 0.81, "Q2n": 0.95}
    assert summary["classical"] == {
        "wv3": {"EXP": {"QNR": 0.90, "HQNR": 0.88, "Q2n": 0.64}},
        "qb": {"EXP": {"QNR": 0.91, "HQNR": 0.89, "Q2n": 0.75}},
    }
    assert summary["meta"]["pnn"]["model"] == "pnn"
    # HQNR above the sensor's best classical HQNR (pnn's run scored EXP):
    # none of them; dicnn's sensors are scored against the same references.
    assert summary["beats_classical"]["pnn"] == {"single": [0, 2], "joint": [0, 2]}

    text = bench.to_markdown(summary)
    assert "| pnn | qb | 0.9000 | **0.9100** | 0.8000 | **0.8100** |" in text
    assert summary["beats_classical"]["dicnn"] == {
        "single": [0, 2],
        "joint": [1, 2],
    }
    assert (
        "| dicnn | 0/2 (-0.1000) | 1/2 (+0.0000) | 1/2 (+0.0000) | 0/2 | 1/2 |" in text
    )
    assert "| EXP | qb | 0.9100 | 0.8900 | 0.7500 |" in text
    assert "No results: sfdi." in text


def test_collect_names_a_file_that_is_not_a_result(bench, tmp_path):
    (tmp_path / "pnn").mkdir()
    bad = tmp_path / "pnn" / "single_vs_multi.json"
    bad.write_text('{"meta": {}}')
    with pytest.raises(ValueError, match="single_vs_multi.json.*'results'"):
        bench.collect({"pnn": tmp_path / "pnn"})
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="single_vs_multi.json"):
        bench.collect({"pnn": tmp_path / "pnn"})


def _collect_only(models: str, output_dir: Path) -> subprocess.CompletedProcess:
    """Run the script with `--norun` (collect only) in a subprocess."""
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "single_vs_multi_all.py"),
            "--norun",
            f"--models={models}",
            f"--output_dir={output_dir}",
        ],
        capture_output=True,
        text=True,
    )


def test_norun_writes_the_tables(runs):
    proc = _collect_only("pnn,dicnn", runs)
    assert proc.returncode == 0, proc.stderr[-2000:]
    md = (runs / "single_vs_multi_all.md").read_text()
    assert "| pnn | 2/2 (+0.0300) | 1/2 (-0.0200) | 1/2 (+0.0250) | 0/2 | 0/2 |" in md
    payload = json.loads((runs / "single_vs_multi_all.json").read_text())
    assert payload["missing"] == [] and payload["failed"] == {}
    assert not (runs / "pnn.log").exists()  # nothing was run


def test_unknown_model_is_a_usage_error(tmp_path):
    proc = _collect_only("pnn,notamodel", tmp_path)
    assert proc.returncode != 0
    assert "notamodel" in proc.stderr
