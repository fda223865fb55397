"""Training throughput and inference latency / memory of every model.

For each model (PanTiny and the CNN baselines) and the current Keras backend:

- training samples/s: `train_on_batch` with the paper's recipe (loss
  1.5 L1 + 4 (1 - SSIM), AdamL2, backend-default `jit_compile`), batch
  `--batch_size` (16) of `--train_size` (128) PAN pixels, 4 bands, after
  warm-up steps;
- inference latency: `predict_on_batch` of one image at each `--infer_sizes`
  PAN size (512, 2048), median of `--repeats` calls after a warm-up call;
- peak memory: the peak RSS (`ru_maxrss`) of a fresh process per model
  (`--noisolate` runs all models in this process instead), read after the
  inference runs at each size (so "after 2048^2" includes everything before).

Run once per backend:

    KERAS_BACKEND=tensorflow python benchmarks/bench_models.py
    KERAS_BACKEND=jax python benchmarks/bench_models.py --models=pantiny,pnn
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_list(
    "models",
    ["pantiny", "pnn", "pannet", "dicnn", "msdcnn", "fusionnet"],
    "Models to benchmark (registry names).",
)
flags.DEFINE_integer("batch_size", 16, "Training batch size.")
flags.DEFINE_integer("train_size", 128, "Training PAN patch size.")
flags.DEFINE_integer("train_steps", 3, "Timed training steps (after 2 warm-up).")
flags.DEFINE_list("infer_sizes", ["512", "2048"], "Inference PAN sizes.")
flags.DEFINE_integer("repeats", 2, "Timed inference calls per size.")
flags.DEFINE_integer("bands", 4, "MS bands.")
flags.DEFINE_string("jit_compile", "auto", "auto, true or false.")
flags.DEFINE_bool("isolate", True, "One fresh process per model (clean peak RSS).")
flags.DEFINE_list(
    "tiled_models",
    ["panmamba"],
    "Models whose inference above --tile PAN pixels runs tile by tile "
    "(predict_scene, blending, one tile per call): Pan-Mamba's selective scan "
    "holds (pixels x 2 dim x 16) states per layer, about 17 GB at 2048^2.",
)
flags.DEFINE_integer("tile", 512, "Tile side for --tiled_models.")
flags.DEFINE_bool("json_row", False, "Internal: print one JSON row and exit.")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _inputs(rng, batch, size, bands):
    h = size // 4
    return {
        "ms": rng.random((batch, h, h, bands), dtype=np.float32),
        "pan": rng.random((batch, size, size, 1), dtype=np.float32),
    }


def bench(name, rng):
    import keras

    from keras_pansharp import recipes
    from keras_pansharp.models.registry import get_model

    jit = {"auto": "auto", "true": True, "false": False}[FLAGS.jit_compile.lower()]
    model = get_model(name, bands=FLAGS.bands)
    recipes.paper(model, epochs=1, steps_per_epoch=100, jit_compile=jit)
    x = _inputs(rng, FLAGS.batch_size, FLAGS.train_size, FLAGS.bands)
    y = rng.random(
        (FLAGS.batch_size, FLAGS.train_size, FLAGS.train_size, FLAGS.bands),
        dtype=np.float32,
    )
    for _ in range(2):
        model.train_on_batch(x, y)
    t = time.perf_counter()
    for _ in range(FLAGS.train_steps):
        model.train_on_batch(x, y)
    train_sps = FLAGS.batch_size * FLAGS.train_steps / (time.perf_counter() - t)
    row = {
        "model": name,
        "params": model.count_params(),
        "train_samples_per_s": train_sps,
        "jit_compile": bool(model.jit_compile),
    }
    rss0 = _rss_mb()
    for size in [int(s) for s in FLAGS.infer_sizes]:
        xi = _inputs(rng, 1, size, FLAGS.bands)
        if name in FLAGS.tiled_models and size > FLAGS.tile:
            from keras_pansharp.scene import predict_scene

            row[f"tiled_{size}"] = FLAGS.tile

            def infer(xi=xi, model=model):
                return predict_scene(
                    model, xi["ms"][0], xi["pan"][0], tile=FLAGS.tile,
                    batch_size=1, verbose=0,
                )  # fmt: skip
        else:

            def infer(xi=xi, model=model):
                return keras.ops.convert_to_numpy(model.predict_on_batch(xi))

        infer()
        times = []
        for _ in range(FLAGS.repeats):
            t = time.perf_counter()
            infer()
            times.append(time.perf_counter() - t)
        row[f"latency_{size}_s"] = float(np.median(times))
        row[f"peak_rss_after_{size}_mb"] = _rss_mb()
    row["rss_growth_mb"] = _rss_mb() - rss0
    del model
    keras.backend.clear_session()
    return row


def main(argv):
    del argv
    import keras

    rng = np.random.default_rng(0)
    load = os.getloadavg()
    print(
        f"backend {keras.backend.backend()}, {os.cpu_count()} CPUs, load average "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; batch {FLAGS.batch_size} x "
        f"{FLAGS.train_size}^2 PAN, {FLAGS.bands} bands",
        flush=True,
    )
    rows = []
    for name in FLAGS.models:
        if FLAGS.json_row:
            print("ROW " + json.dumps(bench(name, rng)), flush=True)
            continue
        if FLAGS.isolate:
            args = [a for a in sys.argv[1:] if not a.startswith("--models")]
            proc = subprocess.run(
                [sys.executable, __file__, f"--models={name}", "--json_row", *args],
                capture_output=True,
                text=True,
            )
            lines = [x for x in proc.stdout.splitlines() if x.startswith("ROW ")]
            if proc.returncode or not lines:
                tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                print(proc.stderr[-2000:])
                print(f"  {name} failed (exit {proc.returncode}): {tail}", flush=True)
                rows.append({"model": name, "error": f"exit {proc.returncode}: {tail}"})
                continue
            rows.append(json.loads(lines[-1][4:]))
        else:
            rows.append(bench(name, rng))
        print(f"  done {name}", flush=True)
    if FLAGS.json_row:
        return
    sizes = [int(s) for s in FLAGS.infer_sizes]
    head = ["model", "params", "jit", "train samples/s"]
    head += [f"latency {s}^2 (s)" for s in sizes] + [
        f"peak RSS after {s}^2 (MB)" for s in sizes
    ]
    print("\n| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        if "error" in r:
            print(f"| {r['model']} | failed: {r['error'][:120]} |")
            continue
        cells = [
            r["model"],
            f"{r['params']:,}",
            str(r["jit_compile"]),
            f"{r['train_samples_per_s']:.2f}",
        ]
        cells += [
            f"{r[f'latency_{s}_s']:.3f}"
            + (f" (tiles {r[f'tiled_{s}']})" if f"tiled_{s}" in r else "")
            for s in sizes
        ]
        cells += [f"{r[f'peak_rss_after_{s}_mb']:.0f}" for s in sizes]
        print("| " + " | ".join(cells) + " |")
    load = os.getloadavg()
    print(f"\nload average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    sys.exit(app.run(main))
