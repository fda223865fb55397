"""`kp.adapt` settings on real scenes the shipped model never saw.

Scores the shipped `pantiny_multisensor` weights after `kp.adapt` on each
test-only scene of `../shared/data` (the 8-bit pairs, which no training
uses), for each value of `--adapt_supervised_weight` (0: no-reference loss only,
the default; > 0: also the scene's own Wald-degraded copy with the
supervised loss): FR scores on the whole scene and RR scores on its
Wald-degraded copy, next to the best classical method, as in
`bench_generalization.py` (same four-band view, crops and scoring).

Usage:
    python benchmarks/bench_adapt.py                          # 0 and 1
    python benchmarks/bench_adapt.py --adapt_supervised_weight=0.5 --adapt_scenes=dgif1_8bit
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

import real_scenes  # noqa: E402
from absl import app, flags  # noqa: E402
from bench_generalization import (  # noqa: E402
    CLASSICAL,
    adapt_options,
    classical,
    four_band,
    model_fuse,
    score,
)

import keras_pansharp as kp  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list(
    "adapt_supervised_weight",
    ["0", "1"],
    "kp.adapt supervised_weight values to compare.",
)
flags.DEFINE_list(
    "adapt_scenes",
    [n for n in real_scenes.SCENES if n not in real_scenes.TRAINABLE],
    "Scenes (default: the test-only scenes, never trained on).",
)
flags.DEFINE_string("adapt_output", "runs/bench_adapt.json", "JSON output.")


def main(argv):
    del argv
    model = kp.PanTiny.from_preset("pantiny_multisensor")
    scenes = real_scenes.load_scenes(names=FLAGS.adapt_scenes)
    out = {}
    for name, scene in scenes.items():
        ms, pan, sensor = four_band(scene)
        best = {
            m: score(lambda a, b, m=m, s=sensor: classical(m, a, b, s), ms, pan, sensor)
            for m in CLASSICAL
        }
        row = {
            "best_classical_hqnr": max(r["fr_hqnr"] for r in best.values()),
            "best_classical_q2n": max(r["rr_q2n"] for r in best.values()),
        }
        for sw in map(float, FLAGS.adapt_supervised_weight):
            t = time.perf_counter()
            res = kp.adapt(
                model,
                ms,
                pan,
                sensor=sensor,
                supervised_weight=sw,
                verbose=0,
                **adapt_options(),
            )
            seconds = time.perf_counter() - t
            s = score(
                lambda a, b, m=res.model, s=sensor: model_fuse(m, a, b, s),
                ms,
                pan,
                sensor,
            )
            row[f"sw={sw:g}"] = {
                **s,
                "hqnr_before": res.before["hqnr"],
                "seconds": seconds,
                "steps": res.steps,
                "blend": res.blend,
                "candidates": {str(f): h for f, h in res.candidates.items()},
            }
            print(
                f"{name} supervised_weight={sw:g}: HQNR {res.before['hqnr']:.4f} -> "
                f"{s['fr_hqnr']:.4f}, RR Q2n {s['rr_q2n']:.4f} (best classical HQNR "
                f"{row['best_classical_hqnr']:.4f}, Q2n {row['best_classical_q2n']:.4f}),"
                f" {seconds:.0f} s, {res.steps} steps; kept blend {res.blend}",
                flush=True,
            )
        out[name] = row
    path = Path(FLAGS.adapt_output)
    path.parent.mkdir(parents=True, exist_ok=True)
    kp.utils.write_atomic(path, json.dumps(out, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    app.run(main)
