"""One selective scan, whole or chunked: time and memory of forward + gradient.

Pan-Mamba runs 30 selective scans per image at PAN resolution; whether
`keras_pansharp.layers.selective_scan` scans a sequence whole or in chunks
(`chunk_size`) decides its memory. This benchmark times one scan's forward
pass and the gradient of its sum with respect to `delta`, on random
`(1, L, d)` inputs with `n` states, each configuration in a fresh process so
that the peak RSS is its own.

Usage:
    python benchmarks/bench_selective_scan.py
    KERAS_BACKEND=jax python benchmarks/bench_selective_scan.py --lengths=4096,16384

Prints one line per (length, mode): first-call time (tracing or compiling
included), mean time of the next `--repeats` calls, peak RSS.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_list("lengths", ["4096", "16384"], "Sequence lengths L (tokens).")
flags.DEFINE_list("modes", ["whole", "chunked"], "whole (chunk_size=0), chunked.")
flags.DEFINE_integer("d", 64, "Channels (Pan-Mamba: 2 x 32 filters).")
flags.DEFINE_integer("n", 16, "State size (Pan-Mamba: 16).")
flags.DEFINE_integer("chunk", 1024, "Chunk size of the chunked mode.")
flags.DEFINE_integer("repeats", 3, "Timed calls after the first.")
flags.DEFINE_string("one", "", "Internal: run one 'length,mode' and print JSON.")


def measure(length: int, mode: str) -> dict:
    """Time one scan's forward + gradient in this process."""
    import keras
    import numpy as np

    from keras_pansharp.layers.selective_scan import selective_scan

    rng = np.random.default_rng(0)
    d, n = FLAGS.d, FLAGS.n
    u, delta = (rng.normal(size=(1, length, d)).astype("float32") for _ in "ud")
    a = -np.exp(rng.normal(size=(d, n))).astype("float32")
    b, c = (rng.normal(size=(1, length, n)).astype("float32") for _ in "bc")
    chunk = FLAGS.chunk if mode == "chunked" else 0

    def loss(delta):
        return keras.ops.sum(selective_scan(u, delta, a, b, c, chunk_size=chunk))

    if keras.backend.backend() == "jax":
        import jax

        step = jax.jit(jax.grad(loss))
    elif keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        @tf.function
        def step(delta):
            with tf.GradientTape() as tape:
                tape.watch(delta)
                value = loss(delta)
            return tape.gradient(value, delta)

        delta = tf.constant(delta)
    else:
        raise app.UsageError("this benchmark supports the TF and JAX backends")
    t = time.perf_counter()
    np.asarray(step(delta))
    first = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(FLAGS.repeats):
        np.asarray(step(delta))
    return {
        "length": length,
        "mode": mode,
        "backend": keras.backend.backend(),
        "first_s": round(first, 2),
        "step_s": round((time.perf_counter() - t) / FLAGS.repeats, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main(argv):
    del argv
    if FLAGS.one:
        length, mode = FLAGS.one.split(",")
        print(json.dumps(measure(int(length), mode)))
        return
    bad = [m for m in FLAGS.modes if m not in ("whole", "chunked")]
    if bad:
        raise app.UsageError(f"unknown modes {bad}; use whole, chunked")
    print(
        f"backend {os.environ.get('KERAS_BACKEND', 'tensorflow')}, d {FLAGS.d}, "
        f"n {FLAGS.n}, chunk {FLAGS.chunk}, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print("| L | mode | first call (s) | step (s) | peak RSS (MB) |")
    print("|---|---|---|---|---|")
    for length in FLAGS.lengths:
        for mode in FLAGS.modes:
            args = [
                f"--{k}={getattr(FLAGS, k)}" for k in ("d", "n", "chunk", "repeats")
            ]
            proc = subprocess.run(
                [sys.executable, __file__, f"--one={length},{mode}", *args],
                capture_output=True,
                text=True,
            )
            if proc.returncode:
                print(f"| {length} | {mode} | failed: {proc.stderr.strip()[-300:]} |")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            print(
                f"| {length} | {mode} | {r['first_s']} | {r['step_s']} | "
                f"{r['peak_rss_mb']} |",
                flush=True,
            )


if __name__ == "__main__":
    app.run(main)
