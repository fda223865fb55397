"""Exact tiled PanTiny (`predict_scene(exact=True)`) against untiled predict.

For each `--sizes` entry (PAN side), a smoothed random scene is fused by
untiled `model.predict` and by `predict_scene(..., exact=True)`; both are
warmed up first (tracing/compilation excluded), then timed `--repeats` times
interleaved (untiled, tiled, untiled, ...) so that load from other processes
hits both alike. Prints the median times, their ratio (the goal: <= 1.5) and
the max |tiled - untiled|. Run once per backend:

    python benchmarks/bench_exact_tiling.py --sizes=1024,2048
    KERAS_BACKEND=jax python benchmarks/bench_exact_tiling.py --sizes=1024,2048
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
import time

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_list("sizes", ["1024", "2048"], "PAN sides of the scenes.")
flags.DEFINE_string("model", "pantiny", "Model preset (registry name).")
flags.DEFINE_integer("tile", 512, "Tile side (exact: halo included).")
flags.DEFINE_integer("batch_size", 4, "Tiles per call.")
flags.DEFINE_integer("bands", 4, "MS bands.")
flags.DEFINE_integer("repeats", 3, "Timed runs of each (interleaved).")
flags.DEFINE_float("cache_mb", 1024, "predict_scene cache_mb.")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(argv):
    del argv
    import keras
    from scipy import ndimage

    from keras_pansharp.models.registry import get_model
    from keras_pansharp.scene import predict_scene

    print(
        f"backend {keras.backend.backend()}, load average {os.getloadavg()}, "
        f"{os.cpu_count()} CPUs",
        flush=True,
    )
    model = get_model(FLAGS.model, bands=FLAGS.bands)
    rng = np.random.default_rng(0)
    rows = []
    for n in (int(s) for s in FLAGS.sizes):
        ms = rng.random((n // 4, n // 4, FLAGS.bands), dtype=np.float32)
        pan = rng.random((n, n), dtype=np.float32)
        ms = ndimage.uniform_filter(ms, (3, 3, 1)).astype(np.float32)
        pan = ndimage.uniform_filter(pan, 5).astype(np.float32)
        batch = {"ms": ms[None], "pan": pan[None, ..., None]}

        def untiled(batch=batch):
            return model.predict(batch, verbose=0)[0]

        def tiled(ms=ms, pan=pan):
            return predict_scene(
                model,
                ms,
                pan,
                tile=FLAGS.tile,
                batch_size=FLAGS.batch_size,
                exact=True,
                verbose=0,
                cache_mb=FLAGS.cache_mb,
            )

        t = time.perf_counter()
        full = untiled()
        warm_full = time.perf_counter() - t
        t = time.perf_counter()
        out = tiled()
        warm_tiled = time.perf_counter() - t
        diff = float(np.abs(out - full).max())
        del out
        times_full, times_tiled = [], []
        for _ in range(FLAGS.repeats):
            t = time.perf_counter()
            untiled()
            times_full.append(time.perf_counter() - t)
            t = time.perf_counter()
            tiled()
            times_tiled.append(time.perf_counter() - t)
        # Per-repeat ratios (neighbouring runs share the machine's load).
        ratios = [b / a for a, b in zip(times_full, times_tiled)]
        row = (
            n,
            statistics.median(times_full),
            statistics.median(times_tiled),
            statistics.median(ratios),
            min(ratios),
            diff,
            warm_full,
            warm_tiled,
        )
        rows.append(row)
        print(
            f"{n}: untiled {[round(x, 2) for x in times_full]} s, exact tiled "
            f"{[round(x, 2) for x in times_tiled]} s, ratios "
            f"{[round(x, 2) for x in ratios]}; first calls {warm_full:.1f} / "
            f"{warm_tiled:.1f} s; max |diff| {diff:.2e}; peak RSS so far "
            f"{_rss_mb():.0f} MB",
            flush=True,
        )
    print(
        "\n| backend | PAN size | tile / batch | untiled s | exact tiled s | "
        "ratio (median, min) | max abs diff |"
    )
    print("|---|---|---|---|---|---|---|")
    for n, tf_, tt, r, rmin, diff, _, _ in rows:
        print(
            f"| {keras.backend.backend()} | {n} | {FLAGS.tile} / "
            f"{FLAGS.batch_size} | {tf_:.2f} | {tt:.2f} | {r:.2f} ({rmin:.2f}) | "
            f"{diff:.1e} |"
        )
    print(f"peak RSS {_rss_mb():.0f} MB (whole run, untiled calls included)")


if __name__ == "__main__":
    sys.exit(app.run(main))
