"""A whole scene disk to disk: peak RSS, speed and bounded-memory FR scores.

For each `--models` entry this benchmark

1. generates a synthetic 4-band uint16 GeoTIFF scene on disk (MS at PAN/4,
   QuickBird-like 11-bit DN, UTM georeferencing, 256 x 256 deflate tiles),
   row block by row block so that generating it needs little memory either:
   land-cover patches with sharp edges (class reflectances per band) times a
   multi-octave texture, the MS being 4 x 4 means of the band images;
2. fuses it with `keras-pansharp fuse` (`kp.fuse_geotiff`) in a fresh
   process: wall time, megapixels per second and that process's peak RSS
   (`ru_maxrss` from `os.wait4`);
3. checks that the output carries the PAN's CRS and geotransform;
4. scores it with `keras-pansharp evaluate` (FR: D_lambda, D_s, QNR,
   D_lambda^K, HQNR with the windowed toolbox-exact metrics) in another
   fresh process: wall time and peak RSS.

A baseline process (imports + model load, no scene) shows how much of the
peak is the framework. Results go to `--output_dir` as `bench_scene.json`
and `bench_scene.md`; generated scenes and outputs are deleted unless
`--keep_files`.

Models: `pnn` (an untrained `PNN(bands=4)` saved as `.keras`: the speed and
memory do not depend on the weights; blended tiling) and `pantiny` (the
shipped `pantiny_multisensor` preset, exact tiling).

Usage:
    python benchmarks/bench_scene.py                      # 16384^2 PNN, 8192^2 PanTiny
    python benchmarks/bench_scene.py --pnn_size=2048 --pantiny_size=1024
    python benchmarks/bench_scene.py --models=pnn --pnn_size=4096 --keep_files
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

FLAGS = flags.FLAGS
flags.DEFINE_list("models", ["pnn", "pantiny"], "Models to run: pnn, pantiny.")
flags.DEFINE_integer("pnn_size", 16384, "PAN side of the PNN scene.")
flags.DEFINE_integer("pantiny_size", 8192, "PAN side of the exact PanTiny scene.")
flags.DEFINE_string("sensor", "qb", "4-band sensor of the scene (max DN).")
flags.DEFINE_integer("tile", 512, "Model tile side (fuse --tile).")
flags.DEFINE_integer(
    "batch_size", None, "Tiles per model call (fuse --batch-size; default: fuse's)."
)
flags.DEFINE_float(
    "cache_mb", None, "Exact tiling's activation cache (fuse --cache-mb; default 256)."
)
flags.DEFINE_integer("window", 1024, "Evaluation window side (evaluate --window).")
flags.DEFINE_boolean("evaluate", True, "Score the result (FR, windowed).")
flags.DEFINE_boolean("baseline", True, "Measure imports + model load alone.")
flags.DEFINE_string("output_dir", "runs/bench_scene", "JSON + Markdown output.")
flags.DEFINE_string("scene_dir", None, "Scenes and outputs (default output_dir).")
flags.DEFINE_boolean("keep_files", False, "Keep the generated scenes and outputs.")
flags.DEFINE_integer("seed", 0, "Scene seed.")
flags.DEFINE_boolean(
    "merge", True, "Keep the other models' rows of an earlier bench_scene.json."
)
flags.DEFINE_integer("timeout", 4 * 3600, "Seconds allowed for each stage.")

ORIGIN = (500000.0, 4000000.0)  # UTM 33N (EPSG:32633)
PAN_PIXEL = 0.6  # metres, QuickBird-like
ROWS_PER_BLOCK = 512  # PAN rows generated at a time
CLASSES = np.array(  # per-class reflectance of blue, green, red, NIR (0..1)
    [
        [0.08, 0.10, 0.07, 0.45],  # vegetation
        [0.10, 0.14, 0.10, 0.55],  # crops
        [0.20, 0.22, 0.24, 0.30],  # bare soil
        [0.30, 0.30, 0.30, 0.32],  # concrete
        [0.06, 0.07, 0.05, 0.03],  # water
        [0.35, 0.30, 0.28, 0.35],  # roofs
    ]
)
PAN_WEIGHTS = np.array([0.2, 0.3, 0.3, 0.2])  # PAN response over the bands


# --------------------------------------------------------------------------
# Scene generation (bounded memory)
# --------------------------------------------------------------------------


def geo_tags(pixel: float) -> list[tuple]:
    """UTM 33N PixelScale + Tiepoint + GeoKeys (tifffile extratags)."""
    return [
        (33550, 12, 3, (pixel, pixel, 0.0), True),
        (33922, 12, 6, (0.0, 0.0, 0.0, ORIGIN[0], ORIGIN[1], 0.0), True),
        (
            34735,
            3,
            16,
            (1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, 32633),
            True,
        ),
    ]


class _Field:
    """A smooth random field of one octave, evaluated on any pixel block."""

    def __init__(self, rng, size: int, spacing: int):
        n = size // spacing + 3
        self.grid = rng.standard_normal((n, n)).astype(np.float32)
        self.spacing = spacing

    @staticmethod
    def _weights(coords, spacing):
        t = (coords + 0.5) / spacing
        i = np.floor(t).astype(np.int64)
        f = (t - i).astype(np.float32)
        return i, f * f * (3 - 2 * f)  # smoothstep

    def block(self, y0: int, y1: int, x0: int, x1: int, step: int = 1) -> np.ndarray:
        """Values at pixel centres `y0:y1:step`, `x0:x1:step` (PAN pixels)."""
        ys = np.arange(y0, y1, step) + (step - 1) / 2
        xs = np.arange(x0, x1, step) + (step - 1) / 2
        iy, fy = self._weights(ys, self.spacing)
        ix, fx = self._weights(xs, self.spacing)
        g = self.grid
        rows = g[iy] * (1 - fy)[:, None] + g[iy + 1] * fy[:, None]
        return rows[:, ix] * (1 - fx) + rows[:, ix + 1] * fx


class SceneGenerator:
    """Deterministic synthetic land cover, evaluated block by block."""

    def __init__(self, size: int, seed: int, max_dn: float):
        rng = np.random.default_rng(seed)
        self.size, self.max_dn = size, max_dn
        # Land-cover classes from a low-frequency field (sharp edges).
        self.cover = [_Field(rng, size, s) for s in (1024, 256, 64)]
        # Texture inside the patches.
        self.texture = [_Field(rng, size, s) for s in (32, 8, 4)]
        self.noise_seed = seed + 1

    def bands(self, y0: int, y1: int) -> np.ndarray:
        """`(y1 - y0, size, 4)` band images at PAN resolution, DN float32."""
        w = self.size
        c = sum(
            a * f.block(y0, y1, 0, w)
            for a, f in zip((1.0, 0.5, 0.25), self.cover, strict=True)
        )
        classes = np.clip(((c + 1.5) / 3.0 * len(CLASSES)).astype(np.int64), 0, 5)
        tex = sum(
            a * f.block(y0, y1, 0, w)
            for a, f in zip((0.08, 0.05, 0.03), self.texture, strict=True)
        )
        refl = CLASSES.astype(np.float32)[classes] * (1 + tex)[..., None]
        return refl * np.float32(self.max_dn * 1.4)

    def pan_and_ms(self, y0: int, y1: int) -> tuple[np.ndarray, np.ndarray]:
        """PAN rows `y0:y1` and MS rows `y0/4:y1/4` as uint16 DN."""
        b = self.bands(y0, y1)
        rng = np.random.default_rng([self.noise_seed, y0])
        pan = b @ PAN_WEIGHTS.astype(np.float32)
        pan += rng.normal(0, 4, pan.shape).astype(np.float32)
        h, w, c = b.shape
        ms = b.reshape(h // 4, 4, w // 4, 4, c).mean(axis=(1, 3))
        ms += rng.normal(0, 2, ms.shape).astype(np.float32)

        def dn(x):
            return np.clip(np.rint(x), 0, self.max_dn).astype(np.uint16)

        return dn(pan), dn(ms)


def generate_scene(folder: Path, size: int, seed: int, max_dn: float) -> tuple:
    """Write `ms.tif` (size/4, 4 bands) and `pan.tif` (size) under `folder`."""
    from keras_pansharp.data.geotiff import GeoTiffWriter

    if size % 128:
        raise ValueError(f"scene size must be a multiple of 128, got {size}")
    folder.mkdir(parents=True, exist_ok=True)
    ms_path, pan_path = folder / "ms.tif", folder / "pan.tif"
    gen = SceneGenerator(size, seed, max_dn)
    desc = ["blue", "green", "red", "nir"]
    kw = {"tile": 256, "overviews": 0, "overwrite": True}
    with (
        GeoTiffWriter(
            ms_path, (size // 4, size // 4, 4), geo_tags=geo_tags(4 * PAN_PIXEL),
            band_descriptions=desc, **kw,
        ) as ms_w,
        GeoTiffWriter(
            pan_path, (size, size, 1), geo_tags=geo_tags(PAN_PIXEL), **kw
        ) as pan_w,
    ):  # fmt: skip
        step = min(ROWS_PER_BLOCK, size)
        for y0 in range(0, size, step):
            pan, ms = gen.pan_and_ms(y0, min(y0 + step, size))
            pan_w.write(pan, y0, 0)
            ms_w.write(ms, y0 // 4, 0)
    return ms_path, pan_path


# --------------------------------------------------------------------------
# Stages in fresh processes
# --------------------------------------------------------------------------


def run_stage(argv: list[str], log: Path, timeout: float) -> dict:
    """Run `argv`; wall time, exit status and the process's peak RSS (MB)."""
    t0 = time.perf_counter()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as f:
        proc = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, env=env)
        deadline = t0 + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.5)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t0
    return {
        "returncode": proc.returncode,
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024.0, 1),  # KiB on Linux
        "log": str(log),
    }


def _tail(log: str, n: int = 600) -> str:
    text = Path(log).read_text(errors="replace")
    return text[-n:].replace("\r", "\n")


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "keras_pansharp.cli", *map(str, args)]


def model_spec(name: str, folder: Path) -> str:
    """A `fuse` model argument: a `.keras` file or a preset name."""
    if name == "pantiny":
        return "pantiny_multisensor"
    if name == "pnn":
        path = folder / "pnn.keras"
        if not path.exists():
            code = (
                "import sys; from keras_pansharp.models.pnn import PNN; "
                "PNN(bands=4).save(sys.argv[1])"
            )
            subprocess.run([sys.executable, "-c", code, str(path)], check=True)
        return str(path)
    raise ValueError(f"unknown model {name!r} (pnn, pantiny)")


def baseline(spec: str, folder: Path, timeout: float) -> dict:
    """Peak RSS of a process that imports everything and loads the model."""
    code = (
        "import sys; import keras_pansharp.cli as c; "
        "from keras_pansharp.data.geotiff import GeoTiffReader; "
        "import keras_pansharp.metrics.windowed; c.load_model(sys.argv[1])"
    )
    return run_stage(
        [sys.executable, "-c", code, spec], folder / "baseline.log", timeout
    )


def check_georef(out: Path, pan: Path) -> bool:
    from keras_pansharp.data.geotiff import GeoTiffReader

    with GeoTiffReader(out) as o, GeoTiffReader(pan) as p:
        return (
            o.geo.geotransform == p.geo.geotransform
            and o.geo.crs_keys == p.geo.crs_keys
            and o.shape[:2] == p.shape[:2]
        )


def bench_model(name: str, size: int, work: Path) -> dict:
    from keras_pansharp.sensors import get_sensor

    sensor = get_sensor(FLAGS.sensor)
    if sensor.num_bands != 4:
        raise ValueError(
            f"--sensor must have 4 bands, {sensor.name} has {sensor.num_bands}"
        )
    folder = work / f"{name}_{size}"
    folder.mkdir(parents=True, exist_ok=True)
    row: dict = {"model": name, "pan_size": size, "sensor": sensor.name}
    spec = model_spec(name, folder)
    if FLAGS.baseline:
        row["baseline"] = baseline(spec, folder, FLAGS.timeout)
        print(f"[{name}] baseline: {row['baseline']}", flush=True)
    t0 = time.perf_counter()
    ms_path, pan_path = generate_scene(folder, size, FLAGS.seed, sensor.max_value)
    row["generate_seconds"] = round(time.perf_counter() - t0, 1)
    row["input_mb"] = round(
        (ms_path.stat().st_size + pan_path.stat().st_size) / 2**20, 1
    )
    print(
        f"[{name}] generated {size}^2 scene ({row['input_mb']} MB on disk) in "
        f"{row['generate_seconds']} s",
        flush=True,
    )
    out = folder / "fused.tif"
    fuse = run_stage(
        _cli(
            "fuse", spec, "--ms", ms_path, "--pan", pan_path, "--sensor",
            FLAGS.sensor, "--output", out, "--tile", FLAGS.tile, "--overwrite",
            *(() if FLAGS.batch_size is None else ("--batch-size", FLAGS.batch_size)),
            *(() if FLAGS.cache_mb is None else ("--cache-mb", FLAGS.cache_mb)),
        ),
        folder / "fuse.log",
        FLAGS.timeout,
    )  # fmt: skip
    fuse["megapixels_per_second"] = round(size * size / 1e6 / fuse["seconds"], 4)
    row["fuse"] = fuse
    print(f"[{name}] fuse: {fuse}", flush=True)
    if fuse["returncode"] != 0:
        row["fuse"]["error"] = _tail(fuse["log"])
        print(row["fuse"]["error"], flush=True)
        return row
    log = Path(fuse["log"]).read_text(errors="replace")
    row["exact"] = "exact tiling" in log
    # fuse_geotiff's own time (without the process start, imports and model
    # load): "Wrote ... in 123.4 s (0.5 MP/s)".
    m = re.search(r"tiling\) in ([0-9.]+) s \(", log)
    if m:
        fuse["fuse_geotiff_seconds"] = float(m.group(1))
        fuse["fuse_geotiff_megapixels_per_second"] = round(
            size * size / 1e6 / float(m.group(1)), 4
        )
    row["output_mb"] = round(out.stat().st_size / 2**20, 1)
    row["georef_equals_pan"] = check_georef(out, pan_path)
    if FLAGS.evaluate:
        scores_path = folder / "scores.json"
        ev = run_stage(
            _cli(
                "evaluate", "--fused", out, "--ms", ms_path, "--pan", pan_path,
                "--sensor", FLAGS.sensor, "--window", FLAGS.window, "-o",
                scores_path, "--overwrite",
            ),
            folder / "evaluate.log",
            FLAGS.timeout,
        )  # fmt: skip
        ev["megapixels_per_second"] = round(size * size / 1e6 / ev["seconds"], 4)
        if ev["returncode"] == 0:
            ev["scores"] = json.loads(scores_path.read_text())
            m = re.search(
                r"\(([0-9.]+) s, ", Path(ev["log"]).read_text("utf-8", "replace")
            )
            if m:
                ev["evaluate_seconds"] = float(m.group(1))
        else:
            ev["error"] = _tail(ev["log"])
        row["evaluate"] = ev
        print(f"[{name}] evaluate: {ev}", flush=True)
    return row


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------


def markdown(result: dict) -> str:
    lines = [
        f"Scene benchmark ({result['backend']} backend, {result['cpus']} CPUs, "
        f"load average before {result['load_average'][0]:.1f}).",
        "",
        "| model | PAN size | tiling | fuse wall s (in fuse_geotiff) | MP/s (in "
        "fuse_geotiff) | "
        "fuse peak RSS MB | "
        "baseline RSS MB | georef = PAN | FR eval wall s (in evaluation) | "
        "eval peak RSS MB | HQNR | "
        "QNR | D_lambda^K | D_s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["runs"]:
        f = r.get("fuse", {})
        e = r.get("evaluate", {})
        s = e.get("scores", {})

        def num(d, k, fmt):
            return format(d[k], fmt) if k in d else "-"

        ok = f.get("returncode") == 0
        lines.append(
            f"| {r['model']} | {r['pan_size']}² | "
            f"{('exact' if r.get('exact') else 'blend') if ok else 'failed'} | "
            f"{num(f, 'seconds', '.1f')} ({num(f, 'fuse_geotiff_seconds', '.1f')}) | "
            f"{num(f, 'fuse_geotiff_megapixels_per_second', '.3f')} | "
            f"{num(f, 'peak_rss_mb', '.0f')} | "
            f"{num(r.get('baseline', {}), 'peak_rss_mb', '.0f')} | "
            f"{r.get('georef_equals_pan', '-')} | {num(e, 'seconds', '.1f')} "
            f"({num(e, 'evaluate_seconds', '.1f')}) | "
            f"{num(e, 'peak_rss_mb', '.0f')} | {num(s, 'hqnr', '.4f')} | "
            f"{num(s, 'qnr', '.4f')} | {num(s, 'd_lambda_k', '.4f')} | "
            f"{num(s, 'd_s', '.4f')} |"
        )
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    import keras

    out_dir = Path(FLAGS.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(FLAGS.scene_dir) if FLAGS.scene_dir else out_dir
    sizes = {"pnn": FLAGS.pnn_size, "pantiny": FLAGS.pantiny_size}
    result = {
        "backend": keras.backend.backend(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "flags": {
            k: FLAGS[k].value
            for k in (
                "models",
                "pnn_size",
                "pantiny_size",
                "sensor",
                "tile",
                "batch_size",
                "cache_mb",
                "window",
                "seed",
            )
        },
        "runs": [],
    }
    print(f"load average {os.getloadavg()}, {os.cpu_count()} CPUs", flush=True)
    previous = out_dir / "bench_scene.json"
    if FLAGS.merge and previous.exists():
        # Keep the rows of other (model, size) pairs from an earlier run.
        todo = {(m, sizes.get(m)) for m in FLAGS.models}
        old = json.loads(previous.read_text()).get("runs", [])
        result["runs"] = [r for r in old if (r["model"], r["pan_size"]) not in todo]
    os.environ.setdefault("KERAS_BACKEND", result["backend"])
    for name in FLAGS.models:
        if name not in sizes:
            raise app.UsageError(f"unknown model {name!r} (pnn, pantiny)")
        row = bench_model(name, sizes[name], work)
        result["runs"].append(row)
        result["load_average_after"] = os.getloadavg()
        (out_dir / "bench_scene.json").write_text(json.dumps(result, indent=2) + "\n")
        (out_dir / "bench_scene.md").write_text(markdown(result))
        if not FLAGS.keep_files:
            folder = work / f"{name}_{sizes[name]}"
            for p in folder.glob("*.tif"):
                p.unlink()
            for p in folder.glob(".*.tif*"):  # leftovers of a killed writer
                p.unlink() if p.is_file() else shutil.rmtree(p)
    print(markdown(result), flush=True)
    failed = [r["model"] for r in result["runs"] if r["fuse"]["returncode"] != 0]
    print(f"Wrote {out_dir / 'bench_scene.json'} and bench_scene.md", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    app.run(main)
