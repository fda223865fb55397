"""Wall time of the toolbox-exact evaluation (NumPy float64).

Full RR evaluation (`evaluate_rr`: Q2n, Q_avg, SAM, ERGAS, SCC, PSNR, SSIM)
of a 256 x 256 x 8 image, and full FR evaluation (`evaluate_fr`: D_lambda,
D_s, QNR, D_lambda^K, HQNR, including interp23tap of the MS, the PAN
low-pass and the MTF filtering) for PAN 512^2, 1024^2 and 2048^2 with 8 bands.
Goal: FR of 2048^2 x 8 in under 5 s on 2 cores, time linear in pixels.

`--windowed`: peak memory of scene-level FR evaluation. Writes a synthetic
uint16 scene (`--scene-size` PAN pixels, `--scene-bands` bands; fused, MS and
PAN as `.npy` files in a temporary folder, written strip by strip), then runs
`evaluate_fr` on the whole scene loaded in memory and `evaluate_fr_windowed`
for each `--windows` size, each in a fresh subprocess, and reports the peak
RSS (`resource.getrusage(...).ru_maxrss`, including the ~230 MB of the
imported libraries under `KERAS_BACKEND=numpy`), the wall time and the largest difference between the
windowed and in-memory scores. The windowed runs read their inputs through
`--reader`: `file` (default) opens the `.npy` memmap afresh for each window
and copies the window out, as a GeoTIFF window reader would, so RSS shows the
evaluation's own memory; `memmap` slices one long-lived `np.memmap`, whose
file pages then stay mapped and count in RSS (up to the file sizes) although
the kernel can drop them at any time.

Usage:

    python benchmarks/bench_metrics.py [--sizes 512 1024 2048] [--repeats 3]
    python benchmarks/bench_metrics.py --windowed [--scene-size 8192]
        [--scene-bands 4] [--windows 1024 2048] [--no-in-memory]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

# keras_pansharp is imported inside the functions: with --windowed this
# process stays small, as the peak RSS a forked child reports with getrusage
# includes the parent's RSS at the fork (Linux keeps it across exec).


def _scene(rng, size: int, bands: int = 8):
    """Synthetic DN scene: smooth MS, PAN, and a plausible fused image."""
    from keras_pansharp.signal import interp23tap

    h = size // 4
    base = rng.uniform(200, 1500, (h // 8 + 1, h // 8 + 1, bands))
    ms = interp23tap(interp23tap(base, 4), 2)[:h, :h] + rng.normal(0, 15, (h, h, bands))
    ms = np.clip(ms, 1, 2047)
    lms = interp23tap(ms, 4)
    detail = rng.normal(0, 25, (size, size))
    pan = np.clip(lms.mean(axis=-1) + detail, 1, 2047)
    fused = np.clip(lms + 0.8 * detail[..., None], 1, 2047)
    return fused, ms, pan


def _best(fn, repeats: int) -> tuple[float, float]:
    """Best wall time and the CPU time (all threads) of that run, seconds.

    On a shared, loaded machine the CPU time is the better estimate of the
    wall time on an idle one (the code is mostly single-threaded).
    """
    best = (math.inf, math.inf)
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        run = (time.perf_counter() - t, time.process_time() - c)
        best = min(best, run)
    return best


# ------------------------------------------------ --windowed: peak RSS
_SCENE_FILES = ("fused", "ms", "pan")


def _write_scene(folder: str, size: int, bands: int, seed: int = 0) -> None:
    """Synthetic uint16 DN scene as .npy files, written in strips of rows.

    Smooth MS (bilinear zoom of a coarse random field plus noise); PAN = band
    mean of the nearest-upsampled MS plus detail; fused = upsampled MS plus
    most of the detail plus noise. Peak memory: the MS plus one strip.
    """
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    h = size // 4
    coarse = rng.uniform(200, 1500, (h // 32 + 2, h // 32 + 2, bands))
    zoom = (h / coarse.shape[0], h / coarse.shape[1], 1)
    ms = ndimage.zoom(coarse, zoom, order=1)[:h, :h] + rng.normal(0, 15, (h, h, bands))
    ms = np.clip(np.round(ms), 1, 2047).astype(np.uint16)
    np.save(os.path.join(folder, "ms.npy"), ms)
    open_ = np.lib.format.open_memmap
    pan = open_(os.path.join(folder, "pan.npy"), "w+", np.uint16, (size, size))
    fused = open_(
        os.path.join(folder, "fused.npy"), "w+", np.uint16, (size, size, bands)
    )
    strip = 256
    for r0 in range(0, size, strip):
        up = np.repeat(np.repeat(ms[r0 // 4 : (r0 + strip) // 4], 4, 0), 4, 1)
        up = up.astype(np.float64)
        detail = rng.normal(0, 25, up.shape[:2])
        pan[r0 : r0 + strip] = np.clip(np.round(up.mean(-1) + detail), 1, 2047)
        f = up + 0.8 * detail[..., None] + rng.normal(0, 5, up.shape)
        fused[r0 : r0 + strip] = np.clip(np.round(f), 1, 2047)
    pan.flush()
    fused.flush()
    del pan, fused


class _FreshMemmap:
    """Array-like that maps the .npy file for each read and copies the window
    out (no file pages stay mapped between reads, like a GeoTIFF reader)."""

    def __init__(self, path: str):
        mm = np.load(path, mmap_mode="r")
        self.path, self.shape, self.dtype = path, mm.shape, mm.dtype

    def __getitem__(self, key):
        mm = np.load(self.path, mmap_mode="r")
        out = np.array(mm[key])
        del mm
        return out


def _child(mode: str, folder: str, sensor: str, window: int, reader: str) -> None:
    """One measurement in a fresh process; prints a JSON line."""
    import resource

    from keras_pansharp.metrics import evaluate_fr, evaluate_fr_windowed

    paths = [os.path.join(folder, f"{k}.npy") for k in _SCENE_FILES]
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    if mode == "memory":
        f, ms, pan = (np.load(p) for p in paths)
        scores = evaluate_fr(f, ms, pan, sensor=sensor)
    else:
        if reader == "file":
            f, ms, pan = (_FreshMemmap(p) for p in paths)
        else:
            f, ms, pan = (np.load(p, mmap_mode="r") for p in paths)
        scores = evaluate_fr_windowed(f, ms, pan, sensor=sensor, window=window)
    wall = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    hwm = _proc_status_mb("VmHWM")  # this process image's own peak (Linux)
    result = {"scores": scores, "wall": wall, "peak_mb": peak, "base_mb": base}
    print(json.dumps(dict(result, hwm_mb=hwm)))


def _proc_status_mb(key: str) -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _run_child(mode, folder, sensor, window, reader) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--_child", mode, folder]
    cmd += ["--_sensor", sensor, "--_window", str(window), "--reader", reader]
    # The metrics are NumPy: Keras' numpy backend keeps TensorFlow (~500 MB of
    # RSS at import) out of the measurement.
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="numpy")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{mode} run failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def windowed_main(args) -> None:
    size, bands = args.scene_size, args.scene_bands
    sensor = "wv3" if bands == 8 else "qb"
    print(f"cpus visible: {os.cpu_count()}, load average: {os.getloadavg()}")
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        t = time.perf_counter()
        # In a subprocess too: this process must stay small (see the imports).
        cmd = [sys.executable, os.path.abspath(__file__), "--_write", folder]
        cmd += ["--scene-size", str(size), "--scene-bands", str(bands)]
        subprocess.run(cmd, check=True)
        mb = sum(
            os.path.getsize(os.path.join(folder, f"{k}.npy")) for k in _SCENE_FILES
        )
        print(
            f"scene: PAN {size}^2, {bands} bands, uint16 ({mb / 2**20:.0f} MB on "
            f"disk), written in {time.perf_counter() - t:.1f} s"
        )
        runs = []
        if not args.no_in_memory:
            runs.append(("in memory (evaluate_fr)", "memory", 0, "file"))
        for window in args.windows:
            runs.append((f"windowed {window}", "windowed", window, args.reader))
        ref = None
        print(
            "\n| FR evaluation | reader | peak RSS (MB) | VmHWM (MB) | after imports "
            "(MB) | wall (s) | max abs diff |"
        )
        print("|---|---|---|---|---|---|---|")
        for label, mode, window, reader in runs:
            r = _run_child(mode, folder, sensor, window, reader)
            if ref is None:
                ref = r["scores"]
            diff = max(abs(r["scores"][k] - ref[k]) for k in ref)
            shown = "np.load" if mode == "memory" else reader
            print(
                f"| {label} | {shown} | {r['peak_mb']:.0f} | {r['hwm_mb'] or 0:.0f} | "
                f"{r['base_mb']:.0f} | "
                f"{r['wall']:.1f} | {diff:.1e} |",
                flush=True,
            )
        print("\nscores:", json.dumps(ref))
    print(f"load average after: {os.getloadavg()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bands", type=int, default=8)
    parser.add_argument("--windowed", action="store_true")
    parser.add_argument("--scene-size", type=int, default=8192)
    parser.add_argument("--scene-bands", type=int, default=4)
    parser.add_argument("--windows", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--reader", choices=["file", "memmap"], default="file")
    parser.add_argument("--no-in-memory", action="store_true")
    parser.add_argument("--dir", default=None, help="folder for the temporary scene")
    parser.add_argument("--_child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--_write", help=argparse.SUPPRESS)
    parser.add_argument("--_sensor", help=argparse.SUPPRESS)
    parser.add_argument("--_window", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child:
        _child(*args._child, args._sensor, args._window, args.reader)
        return
    if args._write:
        _write_scene(args._write, args.scene_size, args.scene_bands)
        return
    if args.windowed:
        windowed_main(args)
        return
    from keras_pansharp.metrics import evaluate_fr, evaluate_rr
    from keras_pansharp.metrics import full_resolution as FR
    from keras_pansharp.metrics import q_index as QI
    from keras_pansharp.signal import imresize_bicubic, interp23tap, mtf_filter

    rng = np.random.default_rng(0)
    sensor = "wv3" if args.bands == 8 else "qb"

    print(f"cpus visible: {os.cpu_count()}, load average: {os.getloadavg()}")
    gt = _scene(rng, 256, args.bands)[0]
    fused = np.clip(gt + rng.normal(0, 20, gt.shape), 0, 2047)
    t_rr, c_rr = _best(lambda: evaluate_rr(fused, gt, sensor=sensor), args.repeats)
    print(f"\nRR evaluate_rr 256x256x{args.bands}: wall {t_rr:.3f} s, cpu {c_rr:.3f} s")

    rows = []
    for size in args.sizes:
        f, ms, pan = _scene(rng, size, args.bands)
        reps = args.repeats if size <= 1024 else max(1, min(args.repeats, 2))
        total, cpu = _best(
            lambda f=f, ms=ms, pan=pan: evaluate_fr(f, ms, pan, sensor=sensor), reps
        )
        # Breakdown (one run each).
        t = time.perf_counter()
        lms = interp23tap(ms, 4)
        t_lms = time.perf_counter() - t
        t = time.perf_counter()
        plp = interp23tap(imresize_bicubic(pan, 0.25)[..., None], 4)
        t_plp = time.perf_counter() - t
        t = time.perf_counter()
        FR._d_lambda(f, lms, 32, 1)
        t_dl = time.perf_counter() - t
        t = time.perf_counter()
        FR._d_s(f, lms, pan[..., None], plp, 32, 1)
        t_ds = time.perf_counter() - t
        t = time.perf_counter()
        fm = mtf_filter(f, sensor)
        t_mtf = time.perf_counter() - t
        t = time.perf_counter()
        QI._q2n_dn(fm, lms, 32)
        t_q2n = time.perf_counter() - t
        rows.append((size, total, cpu, t_lms, t_plp, t_dl, t_ds, t_mtf, t_q2n))

    print(f"\nFR evaluate_fr (QNR + HQNR), {args.bands} bands, seconds")
    print("(wall / cpu of the whole call; the breakdown is wall time of one run)")
    hdr = (
        "PAN",
        "wall",
        "cpu",
        "wall s/Mpx",
        "interp23",
        "pan_lp",
        "D_lam",
        "D_s",
        "MTF",
        "Q2n",
    )
    print("| " + " | ".join(hdr) + " |")
    print("|" + "---|" * len(hdr))
    for size, total, cpu, *parts in rows:
        mpx = size * size / 1e6
        cells = [f"{size}^2", f"{total:.3f}", f"{cpu:.3f}", f"{total / mpx:.3f}"]
        cells += [f"{p:.3f}" for p in parts]
        print("| " + " | ".join(cells) + " |")
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
