"""Detail gain of a pretrained PanTiny, chosen on held-out scenes only.

PanTiny adds a learned residual to the upsampled MS (`fused = LMS + r`). This
benchmark asks whether the pretrained model injects the right amount of
detail on scenes it never saw: it scores `LMS + g * r` for a grid of gains
`g` (`g = 0` is EXP, `g = 1` the model as trained), with the same scores as
`bench_generalization.py` (FR on the whole scene, RR on its Wald-degraded
copy).

Protocol (nothing is chosen on the scene it is scored on):

1. **Choose** `g` on the leave-one-scene-out folds: for each trainable scene,
   the model trained on the *other* scenes
   (`bench_generalization.py --save_weights --detail_gain=1` saves them, the
   recipe without a gain) is scored on it;
   `g*` maximises the mean HQNR over these left-out scenes (ties: the
   larger gain).
2. **Check** `g*` on the test-only scenes (which no training and no choice
   uses) with the recipe trained on all trainable scenes (`--weights`, default
   the shipped weights, which already hold the chosen gain 0.5: pass the
   `examples/pretrain.py --detail_gain=1` weights to rerun the choice).

Scaling the residual by `g` is the same as scaling the kernel of PanTiny's
bias-free last convolution by `g`, so a chosen gain can be folded into the
weights (`--write_weights`).

Usage:
    python benchmarks/bench_generalization.py --folds=scene --noadapt \\
        --save_weights --detail_gain=1 --output_dir=runs/gen_folds  # ~1 h
    python benchmarks/bench_detail_gain.py --folds_dir=runs/gen_folds
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import _common  # noqa: E402
import numpy as np  # noqa: E402
import real_scenes  # noqa: E402
from absl import app, flags  # noqa: E402
from bench_generalization import (  # noqa: E402
    CLASSICAL,
    FR_KEYS,
    RR_KEYS,
    classical,
    four_band,
    model_fuse,
    score,
)

import keras_pansharp as kp  # noqa: E402
from keras_pansharp.models.base import UpsampledMS  # noqa: E402
from keras_pansharp.utils.io import atomic_path  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "folds_dir", "runs/gen_folds", "Output dir of bench_generalization --save_weights."
)
flags.DEFINE_list(
    "gains", ["0", "0.25", "0.5", "0.625", "0.75", "0.875", "1"], "Gains to score."
)
flags.DEFINE_string("gain_output", "runs/detail_gain.json", "JSON output.")
flags.DEFINE_string(
    "weights",
    "",
    "Weights (gain 1) of the recipe trained on all trainable scenes, for the "
    "check on the test-only scenes (default: the shipped weights).",
)
flags.DEFINE_string(
    "write_weights",
    "",
    "If set, write the shipped weights with g* folded into the last "
    "convolution to this .weights.h5 path.",
)


def fold_weights(name: str) -> Path:
    return Path(FLAGS.folds_dir) / "weights" / f"{name}.weights.h5"


def gain_scores(model, ms, pan, sensor, gains) -> dict:
    """Scores of `LMS + g (model - LMS)` for each gain (one prediction each scale)."""
    up = UpsampledMS("interp23tap")
    m = sensor.max_value

    def lms(a):
        return np.asarray(up((a / m)[None].astype("float32")), np.float64)[0] * m

    ms_lr, pan_lr = kp.wald_degrade(ms, pan, sensor)
    f_fr, l_fr = model_fuse(model, ms, pan, sensor), lms(ms)
    f_rr, l_rr = model_fuse(model, ms_lr, pan_lr, sensor), lms(ms_lr)
    out = {}
    for g in gains:
        fr = kp.evaluate_fr(l_fr + g * (f_fr - l_fr), ms, pan, sensor=sensor)
        rr = kp.evaluate_rr(l_rr + g * (f_rr - l_rr), ms, sensor=sensor)
        row = {f"fr_{k}": float(fr[k]) for k in FR_KEYS}
        row.update({f"rr_{k}": float(rr[k]) for k in RR_KEYS})
        out[f"{g:g}"] = row
    return out


def best_classical(ms, pan, sensor) -> dict:
    rows = {
        m: score(lambda a, b, m=m: classical(m, a, b, sensor), ms, pan, sensor)
        for m in CLASSICAL
    }
    return {
        "hqnr": max(r["fr_hqnr"] for r in rows.values()),
        "q2n": max(r["rr_q2n"] for r in rows.values()),
        "rows": rows,
    }


def main(argv):
    del argv
    t0 = time.perf_counter()
    gains = sorted(float(g) for g in FLAGS.gains)
    scenes = real_scenes.load_scenes()
    results = {"choose": {}, "check": {}}
    for name in real_scenes.TRAINABLE:
        path = fold_weights(name)
        if not path.exists():
            raise app.UsageError(
                f"{path} is missing: run bench_generalization.py --folds=scene "
                f"--save_weights --output_dir={FLAGS.folds_dir} first."
            )
        model = kp.PanTiny(bands=4)
        model.load_weights(path)
        ms, pan, sensor = four_band(scenes[name])
        results["choose"][name] = {
            "gains": gain_scores(model, ms, pan, sensor, gains),
            "best_classical": best_classical(ms, pan, sensor),
        }
        print(f"[choose] {name} done ({time.perf_counter() - t0:.0f} s)", flush=True)

    def mean(part, key, g):
        rows = results[part].values()
        return float(np.mean([r["gains"][f"{g:g}"][key] for r in rows]))

    chosen = max(gains, key=lambda g: (round(mean("choose", "fr_hqnr", g), 6), g))
    print(f"g* = {chosen:g} (mean left-out HQNR)", flush=True)
    shipped = kp.PanTiny.from_preset("pantiny_multisensor")
    if FLAGS.weights:
        shipped.load_weights(FLAGS.weights)
    for name in scenes:
        if name in real_scenes.TRAINABLE:
            continue
        ms, pan, sensor = four_band(scenes[name])
        results["check"][name] = {
            "gains": gain_scores(shipped, ms, pan, sensor, gains),
            "best_classical": best_classical(ms, pan, sensor),
        }
        print(f"[check] {name} done ({time.perf_counter() - t0:.0f} s)", flush=True)
    summary = {
        "chosen_gain": chosen,
        "seconds": time.perf_counter() - t0,
        **{
            f"mean_{part}_{key}": {f"{g:g}": mean(part, key, g) for g in gains}
            for part in ("choose", "check")
            for key in ("fr_hqnr", "rr_q2n")
        },
    }
    text = json.dumps({"summary": summary, **results}, indent=1)
    _common.write_atomic(FLAGS.gain_output, text)
    lines = [
        "| part | scene | best classical HQNR / Q2n | "
        + " | ".join(f"g={g:g} HQNR / Q2n" for g in gains)
        + " |"
    ]
    lines.append("|---" * (3 + len(gains)) + "|")
    for part in ("choose", "check"):
        for name, r in results[part].items():
            cells = [
                f"{r['gains'][f'{g:g}']['fr_hqnr']:.4f} / "
                f"{r['gains'][f'{g:g}']['rr_q2n']:.4f}"
                for g in gains
            ]
            bc = r["best_classical"]
            lines.append(
                f"| {part} | {name} | {bc['hqnr']:.4f} / {bc['q2n']:.4f} | "
                + " | ".join(cells)
                + " |"
            )
    print("\n".join(lines))
    print(json.dumps(summary, indent=1))
    if FLAGS.write_weights:
        scaled = kp.PanTiny.from_preset("pantiny_multisensor")
        if FLAGS.weights:
            scaled.load_weights(FLAGS.weights)
        kp.apply_detail_gain(scaled, chosen)
        with atomic_path(FLAGS.write_weights, suffix=".weights.h5") as tmp:
            scaled.save_weights(tmp, overwrite=True)
        print(f"wrote {FLAGS.write_weights} (last convolution x {chosen:g})")


if __name__ == "__main__":
    app.run(main)
