"""`predict_scene`: tiled vs untiled agreement and peak memory on big scenes.

Two measurements (each prints its numbers):

- `--mode=equal`: a `--size` (1024) PAN scene, untiled `model.predict` vs
  `predict_scene(tile=--tile, overlap=--overlap)`; max |difference| and wall
  time for each `--models` entry (untrained weights; the property is
  architectural), with the default scheme (`exact="auto"`: exact multi-pass
  for PanTiny, blending for convolutional models) and, for models with
  image-wide statistics, also blending (`exact=False`) for comparison.
- `--mode=rss`: a `--size` (10000) PAN scene (random DN, uint16 inputs as a
  user would hold them, normalised tile by tile) fused with `--models[0]`;
  wall time and the process's peak RSS (`ru_maxrss`) before and after
  (scheme from `--exact`).

    python benchmarks/bench_predict_scene.py --mode=equal --size=1024
    python benchmarks/bench_predict_scene.py --mode=rss --size=10000 --models=tinyconv
"""

from __future__ import annotations

import os
import resource
import sys
import time

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_enum("mode", "equal", ["equal", "rss"], "What to measure.")
flags.DEFINE_integer("size", 1024, "PAN side of the scene.")
flags.DEFINE_list("models", ["pantiny", "pnn", "fusionnet"], "Models.")
flags.DEFINE_integer("tile", 512, "Tile side.")
flags.DEFINE_integer("overlap", 64, "Tile overlap.")
flags.DEFINE_integer("batch_size", 4, "Tiles per call.")
flags.DEFINE_integer("bands", 4, "MS bands.")
flags.DEFINE_enum("exact", "auto", ["auto", "true", "false"], "Scheme (rss mode).")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _model(name, bands):
    import keras

    from keras_pansharp.models.base import (
        PansharpModel,
        UpsampledMS,
        pansharp_inputs,
    )
    from keras_pansharp.models.registry import get_model

    if name != "tinyconv":
        return get_model(name, bands=bands)
    # One 3x3 convolution on [lms, pan] + residual: isolates the memory of
    # the tiling machinery from a big network's activations.
    inputs = pansharp_inputs(bands)
    lms = UpsampledMS()(inputs["ms"], inputs["lms"])
    x = keras.layers.Concatenate()([lms, inputs["pan"]])
    x = keras.layers.Conv2D(bands, 3, padding="same")(x)
    return PansharpModel(inputs=inputs, outputs=keras.layers.Add()([x, lms]))


def main(argv):
    del argv
    from keras_pansharp.inference import global_statistics_layers
    from keras_pansharp.scene import predict_scene

    rng = np.random.default_rng(0)
    n = FLAGS.size
    print(f"load average {os.getloadavg()}, {os.cpu_count()} CPUs", flush=True)
    if FLAGS.mode == "equal":
        ms = rng.random((n // 4, n // 4, FLAGS.bands), dtype=np.float32)
        pan = rng.random((n, n), dtype=np.float32)
        # Smooth the random scene a little so it resembles an image.
        from scipy import ndimage

        ms = ndimage.uniform_filter(ms, (3, 3, 1)).astype(np.float32)
        pan = ndimage.uniform_filter(pan, 5).astype(np.float32)
        print(
            "| model | PAN size | scheme | tile / overlap | max abs diff | tiled s "
            "| untiled s |"
        )
        print("|---|---|---|---|---|---|---|")
        for name in FLAGS.models:
            model = _model(name, FLAGS.bands)
            t = time.perf_counter()
            full = model.predict(
                {"ms": ms[None], "pan": pan[None, ..., None]}, verbose=0
            )[0]
            t_full = time.perf_counter() - t
            schemes = ["auto"] + (["false"] if global_statistics_layers(model) else [])
            for scheme in schemes:
                exact = {"auto": "auto", "false": False}[scheme]
                t = time.perf_counter()
                tiled = predict_scene(
                    model,
                    ms,
                    pan,
                    tile=FLAGS.tile,
                    overlap=FLAGS.overlap,
                    batch_size=FLAGS.batch_size,
                    verbose=0,
                    exact=exact,
                )
                t_tiled = time.perf_counter() - t
                diff = float(np.abs(tiled - full).max())
                label = (
                    "blending"
                    if scheme == "false" or not global_statistics_layers(model)
                    else f"exact ({len(global_statistics_layers(model)) + 1} passes)"
                )
                print(
                    f"| {name} | {n} | {label} | {FLAGS.tile} / {FLAGS.overlap} | "
                    f"{diff:.2e} | {t_tiled:.1f} | {t_full:.1f} |",
                    flush=True,
                )
        return
    model = _model(FLAGS.models[0], FLAGS.bands)
    rss0 = _rss_mb()
    ms = rng.integers(0, 2048, (n // 4, n // 4, FLAGS.bands), dtype=np.uint16)
    pan = rng.integers(0, 2048, (n, n), dtype=np.uint16)
    rss_in = _rss_mb()
    t = time.perf_counter()
    out = predict_scene(
        model,
        ms,
        pan,
        tile=FLAGS.tile,
        overlap=FLAGS.overlap,
        batch_size=FLAGS.batch_size,
        max_value=2047.0,
        verbose=1,
        exact={"auto": "auto", "true": True, "false": False}[FLAGS.exact],
    )
    dt = time.perf_counter() - t
    print(
        f"\nmodel {FLAGS.models[0]}, PAN {n}x{n}, {FLAGS.bands} bands, tile "
        f"{FLAGS.tile}/{FLAGS.overlap}, batch {FLAGS.batch_size}: {dt:.1f} s; "
        f"peak RSS: {rss0:.0f} MB after import+model, {rss_in:.0f} MB with the "
        f"uint16 inputs, {_rss_mb():.0f} MB at the end (output {out.nbytes / 2**20:.0f}"
        f" MB float32)"
    )


if __name__ == "__main__":
    sys.exit(app.run(main))
