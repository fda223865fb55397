"""Data-pipeline benchmark: MultiSensorDataset throughput and memory.

Measures, on PanCollection-format HDF5 files written to a temporary folder:

1. batches/s of `MultiSensorDataset` (3 sources: WV2, WV3, GF2 layouts,
   bands="rgbn", random crops + flips) for 16 x 64^2 and 16 x 128^2 batches,
   read in the main thread (workers=1) and through Keras' PyDataset
   enqueuer with 2 worker threads and with 2 worker processes;
2. the PanTiny train-step rate at the same batch shapes (if
   `keras_pansharp.PanTiny` is available), so the ratio says whether the
   pipeline could ever be the bottleneck;
3. resident memory (RSS) while iterating one epoch over a large file
   (default about 2 GB), which must stay flat: samples are read lazily.

Usage:

    python benchmarks/bench_data.py                    # everything
    python benchmarks/bench_data.py --large-gb 0.5 --steps 30 --skip-model

Numbers depend on the disk and the page cache (files just written are
usually cached), the CPU, and the backend (`KERAS_BACKEND`).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_file(path: Path, n: int, bands: int, size: int, sensor: str, seed: int = 0):
    """A PanCollection RR file of `n` samples (DN values, float32, chunked)."""
    import h5py

    rng = np.random.default_rng(seed)
    q = size // 4
    # a few distinct random samples, cycled (writing n random samples is slow)
    base = {
        "gt": rng.uniform(0, 1000, (8, bands, size, size)).astype(np.float32),
        "lms": rng.uniform(0, 1000, (8, bands, size, size)).astype(np.float32),
        "pan": rng.uniform(0, 1000, (8, 1, size, size)).astype(np.float32),
        "ms": rng.uniform(0, 1000, (8, bands, q, q)).astype(np.float32),
    }
    with h5py.File(path, "w") as f:
        for key, arr in base.items():
            ds = f.create_dataset(
                key,
                shape=(n, *arr.shape[1:]),
                dtype="float32",
                chunks=(1, *arr.shape[1:]),
            )
            step = 64
            for s in range(0, n, step):
                m = min(step, n - s)
                ds[s : s + m] = arr[np.arange(s, s + m) % len(arr)]
        f.attrs["sensor"] = sensor
    return path


def bench_pipeline(files, patch, batch, steps, workers, processes=False):
    import keras
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    from keras_pansharp import MultiSensorDataset

    ds = MultiSensorDataset(
        files,
        batch_size=batch,
        patch_size=patch,
        seed=0,
        steps_per_epoch=steps,
        workers=workers,
        use_multiprocessing=processes,
    )
    del keras
    if workers == 1:
        ds[0]  # warm up (opens files)
        t = time.perf_counter()
        for i in range(steps):
            ds[i]
        return steps / (time.perf_counter() - t)
    adapter = PyDatasetAdapter(ds, shuffle=False)
    adapter.on_epoch_begin()
    it = adapter.get_numpy_iterator()
    next(it)
    t = time.perf_counter()
    n = 0
    for _ in it:
        n += 1
    rate = n / (time.perf_counter() - t)
    adapter.on_epoch_end()
    return rate


def bench_model(patch, batch, steps):
    import keras

    import keras_pansharp

    if not hasattr(keras_pansharp, "PanTiny"):
        return None
    model = keras_pansharp.PanTiny(bands=4)
    model.compile(optimizer=keras.optimizers.Adam(5e-4), loss="mae")
    rng = np.random.default_rng(0)
    q = patch // 4
    x = {
        "ms": rng.random((batch, q, q, 4), np.float32),
        "pan": rng.random((batch, patch, patch, 1), np.float32),
        "lms": rng.random((batch, patch, patch, 4), np.float32),
    }
    y = rng.random((batch, patch, patch, 4), np.float32)
    model.train_on_batch(x, y)  # compile
    t = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return steps / (time.perf_counter() - t)


def bench_memory(folder: Path, gb: float, batch: int, max_steps: int):
    from keras_pansharp import MultiSensorDataset

    size, bands = 128, 8
    per_sample = 4 * (2 * bands * size * size + size * size + bands * (size // 4) ** 2)
    n = max(16, int(gb * 1e9 / per_sample))
    path = folder / "large_wv3.h5"
    t = time.perf_counter()
    write_file(path, n, bands, size, "WV3", seed=1)
    write_s = time.perf_counter() - t
    size_gb = path.stat().st_size / 1e9
    ds = MultiSensorDataset(
        {"wv3": path}, batch_size=batch, patch_size=size, seed=0, balance="proportional"
    )
    steps = min(len(ds), max_steps)
    ds[0]  # open the file
    rss = [_rss_mb()]
    t = time.perf_counter()
    for i in range(steps):
        ds[i]
        if (i + 1) % max(1, steps // 4) == 0:
            rss.append(_rss_mb())
    rate = steps / (time.perf_counter() - t)
    return {
        "file_gb": size_gb,
        "samples": n,
        "write_s": write_s,
        "steps": steps,
        "batches_per_s": rate,
        "rss_mb": rss,
        "peak_rss_mb": _peak_rss_mb(),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=40, help="batches per timing")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--model-steps", type=int, default=3)
    p.add_argument("--skip-model", action="store_true")
    p.add_argument("--large-gb", type=float, default=2.0, help="0 to skip")
    p.add_argument("--large-steps", type=int, default=10**9, help="cap on batches")
    p.add_argument("--dir", default=None, help="folder for the files (temp)")
    args = p.parse_args(argv)

    import keras

    folder = Path(args.dir or tempfile.mkdtemp(prefix="kp_bench_data_"))
    folder.mkdir(parents=True, exist_ok=True)
    free_gb = shutil.disk_usage(folder).free / 1e9
    print(
        f"backend={keras.backend.backend()} cpus={os.cpu_count()} folder={folder} "
        f"free={free_gb:.0f} GB"
    )
    try:
        # memory first: model training below grows the allocator's arenas
        if args.large_gb > 0:
            need = args.large_gb * 1.1
            if free_gb < need + 5:
                print(
                    f"skipping memory test: {free_gb:.0f} GB free < {need + 5:.0f} GB"
                )
            else:
                m = bench_memory(folder, args.large_gb, args.batch, args.large_steps)
                print(
                    f"large file {m['file_gb']:.2f} GB ({m['samples']} x 128^2 WV3 samples, "
                    f"written in {m['write_s']:.0f} s): {m['steps']} batches of "
                    f"{args.batch}x128^2 at {m['batches_per_s']:.1f} batches/s; RSS MB "
                    f"during the epoch {[round(r) for r in m['rss_mb']]}, peak "
                    f"{m['peak_rss_mb']:.0f} MB"
                )
        results = []
        for patch in (64, 128):
            files = {
                "wv3": write_file(folder / f"wv3_{patch}.h5", 256, 8, patch, "WV3"),
                "wv2": write_file(folder / f"wv2_{patch}.h5", 256, 8, patch, "WV2"),
                "gf2": write_file(folder / f"gf2_{patch}.h5", 256, 4, patch, "GF2"),
            }
            model_rate = None
            if not args.skip_model:
                model_rate = bench_model(patch, args.batch, args.model_steps)
            for workers, processes in ((1, False), (2, False), (2, True)):
                rate = bench_pipeline(
                    files, patch, args.batch, args.steps, workers, processes
                )
                results.append((patch, workers, processes, rate, model_rate))
                ratio = f"{rate / model_rate:8.1f}x" if model_rate else "     n/a"
                mr = f"{model_rate:7.2f}" if model_rate else "    n/a"
                kind = "processes" if processes else "threads"
                print(
                    f"batch {args.batch}x{patch}^2  workers={workers} {kind:9s}: "
                    f"{rate:8.1f} batches/s | PanTiny train steps/s {mr} | "
                    f"pipeline/model {ratio}",
                    flush=True,
                )
    finally:
        if args.dir is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
