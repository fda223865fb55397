"""The paper's first finding for every model: single-sensor vs joint training.

Runs `examples/single_vs_multi.py --data=shared` once per model, each in its
own process (same data, seed, batch, patch and step budget for every model),
then collects the per-model results into one table: per model and sensor, FR
QNR and HQNR and RR Q2n of the single-sensor model and of the joint model,
the classical references, and per model the number of sensors on which joint
training scores higher.

A model whose `<output_dir>/<model>/single_vs_multi.json` exists is not run
again, so an interrupted run resumes where it stopped; `--norun` only
collects. A model whose run fails is reported as such (its log is
`<output_dir>/<model>.log`) and the others still run.

Usage:
    # PanTiny and the baselines, 800 joint steps (200 per single-sensor model)
    python benchmarks/single_vs_multi_all.py
    python benchmarks/single_vs_multi_all.py --models=pnn,fusionnet --total_steps=400
    python benchmarks/single_vs_multi_all.py --norun   # tables of finished runs

Results: `<output_dir>/single_vs_multi_all.{md,json}`.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from absl import app, flags

from keras_pansharp.evaluation import EvaluationTable

ROOT = Path(__file__).resolve().parents[1]
FLAGS = flags.FLAGS

#: PanTiny and the paper's baselines, fastest first on 2 CPU cores.
DEFAULT_MODELS = (
    "fusionnet",
    "sfdi",
    "dicnn",
    "pantiny",
    "pnn",
    "pannet",
    "msdcnn",
    "panflow",
    "pscinn",
    "panmamba",
)
#: (column label, key in single_vs_multi.json); higher is better for each.
SCORES = (("QNR", "fr_qnr"), ("HQNR", "fr_hqnr"), ("Q2n", "rr_q2n"))
CLASSICAL = ("EXP", "BT-H", "MTF-GLP-HPM-R")


def define_flags() -> None:
    """The script's flags (defined only when it runs, so that importing the
    module, as the tests do, adds nothing to absl's global flags)."""
    flags.DEFINE_list("models", list(DEFAULT_MODELS), "Models to run, in order.")
    flags.DEFINE_integer("total_steps", 800, "Joint-model steps (single: / sensors).")
    flags.DEFINE_integer("epochs", 4, "Epochs per model.")
    flags.DEFINE_integer("batch_size", 8, "Batch size.")
    flags.DEFINE_integer("patch_size", 64, "PAN-scale training patch size.")
    flags.DEFINE_integer("seed", 0, "Random seed (the same for every model).")
    flags.DEFINE_string("output_dir", "runs/single_vs_multi_all", "Output directory.")
    flags.DEFINE_bool("run", True, "Run the missing models (else only collect).")


def run_model(model: str, out: Path, classical: bool) -> int:
    """Run `examples/single_vs_multi.py` for one model; return its exit code."""
    cmd = [
        sys.executable,
        str(ROOT / "examples" / "single_vs_multi.py"),
        "--data=shared",
        f"--model={model}",
        f"--total_steps={FLAGS.total_steps}",
        "--budget=total",
        f"--epochs={FLAGS.epochs}",
        f"--batch_size={FLAGS.batch_size}",
        f"--patch_size={FLAGS.patch_size}",
        f"--seed={FLAGS.seed}",
        "--classical" if classical else "--noclassical",
        f"--output_dir={out / model}",
        "--verbose=2",
    ]
    with open(out / f"{model}.log", "w") as log:
        return subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT)


def _row(results: Mapping, name: str) -> dict | None:
    """The `SCORES` of one table row; a missing or NaN score is None."""
    row = results.get(name)
    if row is None:
        return None
    values = {label: row.get(key) for label, key in SCORES}
    return {k: None if v is None or math.isnan(v) else v for k, v in values.items()}


def collect(run_dirs: Mapping[str, Path]) -> dict:
    """Gather per-model `single_vs_multi.json` files into one summary.

    Args:
        run_dirs: model name -> its `single_vs_multi.py` output directory.
            Models without a result file are listed under `missing`.

    Returns:
        A dict with `rows` (one per model and sensor: `model`, `sensor`,
        `single` and `joint` score dicts), `classical` (sensor -> method ->
        scores, from the first run that scored them), `wins` (model -> score
        label -> `[joint higher, sensors]`), `gains` (model -> score label ->
        mean of joint minus single over the sensors), `beats_classical`
        (model -> `single` / `joint` -> `[HQNR above the sensor's best
        classical HQNR, sensors with classical scores]`), `meta` (model ->
        the run's meta) and `missing` (models without results).
    """
    rows, classical, wins, gains, meta, missing = [], {}, {}, {}, {}, []
    for model, folder in run_dirs.items():
        path = Path(folder) / "single_vs_multi.json"
        if not path.is_file():
            missing.append(model)
            continue
        try:
            table = EvaluationTable.from_json(path)
        except (OSError, ValueError) as e:
            raise ValueError(
                f"{path}: not a single_vs_multi.py result ({e!r}); expected a "
                "JSON object with a 'results' table."
            ) from e
        results, meta[model] = table.rows, table.meta
        sensors = [n[: -len(" / joint")] for n in results if n.endswith(" / joint")]
        counts = {label: [0, 0] for label, _ in SCORES}
        diffs = {label: [] for label, _ in SCORES}
        for sensor in sensors:
            single = _row(results, f"{sensor} / single")
            joint = _row(results, f"{sensor} / joint")
            if single is None:
                raise ValueError(f"{path}: '{sensor} / joint' has no single row.")
            rows.append(dict(model=model, sensor=sensor, single=single, joint=joint))
            for label, _ in SCORES:
                if single[label] is not None and joint[label] is not None:
                    counts[label][0] += joint[label] > single[label]
                    counts[label][1] += 1
                    diffs[label].append(joint[label] - single[label])
            for method in CLASSICAL:
                row = _row(results, f"{sensor} / {method}")
                if row is not None:
                    classical.setdefault(sensor, {}).setdefault(method, row)
        wins[model] = counts
        gains[model] = {k: sum(v) / len(v) if v else None for k, v in diffs.items()}
    # Sensors on which each setup beats the best classical HQNR.
    beats = {}
    for r in rows:
        best = [m["HQNR"] for m in classical.get(r["sensor"], {}).values()]
        best = max((b for b in best if b is not None), default=None)
        counts = beats.setdefault(r["model"], {"single": [0, 0], "joint": [0, 0]})
        for setup in ("single", "joint"):
            if best is not None and r[setup]["HQNR"] is not None:
                counts[setup][0] += r[setup]["HQNR"] > best
                counts[setup][1] += 1
    return dict(
        rows=rows,
        classical=classical,
        wins=wins,
        gains=gains,
        beats_classical=beats,
        meta=meta,
        missing=missing,
    )


def _f(v) -> str:
    return "-" if v is None else f"{v:.4f}"


def to_markdown(summary: Mapping) -> str:
    """The summary as markdown: per-sensor scores, classical rows, win counts."""
    labels = [label for label, _ in SCORES]
    head = ["model", "sensor"] + [
        f"{x} {s}" for x in labels for s in ("single", "joint")
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in summary["rows"]:
        cells = []
        for x in labels:
            s, j = r["single"][x], r["joint"][x]
            better = s is not None and j is not None and j > s
            cells += [_f(s), f"**{_f(j)}**" if better else _f(j)]
        lines.append(f"| {r['model']} | {r['sensor']} | " + " | ".join(cells) + " |")
    out = ["\n".join(lines)]
    if summary["classical"]:
        lines = [
            "| classical | sensor | " + " | ".join(labels) + " |",
            "|---|---|" + "---|" * len(labels),
        ]
        for sensor, methods in summary["classical"].items():
            for method, row in methods.items():
                cells = [_f(row[x]) for x in labels]
                lines.append(f"| {method} | {sensor} | " + " | ".join(cells) + " |")
        out.append("\n".join(lines))
    lines = [
        "| model | joint > single (mean joint - single): "
        + " | ".join(labels)
        + " | HQNR > best classical: single | joint |",
        "|---|" + "---|" * (len(labels) + 2),
    ]
    for model, counts in summary["wins"].items():
        gain = summary["gains"][model]
        cells = [
            f"{counts[x][0]}/{counts[x][1]}"
            + ("" if gain[x] is None else f" ({gain[x]:+.4f})")
            for x in labels
        ]
        beats = summary["beats_classical"].get(model, {})
        for setup in ("single", "joint"):
            k, n = beats.get(setup, (0, 0))
            cells.append(f"{k}/{n}" if n else "-")
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    out.append("\n".join(lines))
    if summary["missing"]:
        out.append("No results: " + ", ".join(summary["missing"]) + ".")
    return "\n\n".join(out) + "\n"


def main(argv: Sequence[str]) -> None:
    del argv
    from keras_pansharp.models.registry import MODEL_NAMES
    from keras_pansharp.utils.io import atomic_path

    unknown = [m for m in FLAGS.models if m not in MODEL_NAMES]
    if unknown:
        raise app.UsageError(f"unknown models {unknown}; known: {list(MODEL_NAMES)}")
    out = Path(FLAGS.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    failed = {}
    # The classical methods are scored once, by the first run that succeeds.
    scored = bool(collect({m: out / m for m in FLAGS.models})["classical"])
    for model in FLAGS.models:
        if not FLAGS.run or (out / model / "single_vs_multi.json").is_file():
            continue
        t = time.time()
        print(f"=== {model}: running (log {out / model}.log)", flush=True)
        rc = run_model(model, out, classical=not scored)
        print(f"    exit {rc} after {time.time() - t:.0f} s", flush=True)
        if rc:
            failed[model] = rc
        else:
            scored = True
    summary = collect({m: out / m for m in FLAGS.models})
    summary["failed"] = failed
    text = to_markdown(summary)
    with atomic_path(out / "single_vs_multi_all.md") as tmp:
        Path(tmp).write_text(text)
    with atomic_path(out / "single_vs_multi_all.json") as tmp:
        Path(tmp).write_text(json.dumps(summary, indent=1))
    print(text)
    print(f"Saved {out / 'single_vs_multi_all.md'} and .json")


if __name__ == "__main__":
    define_flags()
    app.run(main)
