"""The paper's claim, measured: one model per sensor vs one joint model.

Trains one model per sensor and one model on all sensors together (4-band
"rgbn" data so sensors mix within a batch), with the same total number of
optimiser steps by default (`--budget=total`: the joint model gets
`--total_steps`, each single-sensor model `total_steps / n_sensors`, so every
sensor contributes the same number of training samples to both setups), then
prints per-sensor RR (Q2n, SAM, ERGAS, SCC, PSNR) and FR (D_lambda, D_s, QNR,
HQNR) scores side by side with the toolbox's classical EXP, BT-H and
MTF-GLP-HPM-R as references (scores: `keras_pansharp.evaluate`, toolbox-exact,
in DN). `--budget=per_model` gives every model `--total_steps` instead.

    # built-in synthetic WV2 / WV3 / GF2 data
    python examples/single_vs_multi.py

    # real scenes of ../shared/data (WV3, QB, Pleiades, SPOT-6): the top 3/4
    # of each scene is cut into RR training patches with Wald's protocol
    # (`make_training_set`), the bottom 1/4 is held out for RR and FR tests
    python examples/single_vs_multi.py --data=shared

Results: `<output_dir>/single_vs_multi.{csv,json,md}` and the printed table.
"""

from __future__ import annotations

import time
from pathlib import Path

import keras
import numpy as np
from absl import app, flags, logging

from keras_pansharp import recipes
from keras_pansharp.data import (
    ArrayReader,
    MultiSensorDataset,
    PanCollectionReader,
    Scene,
    make_training_set,
    read_scene,
    synthetic,
)
from keras_pansharp.evaluation import EvaluationTable, evaluate, load_sources
from keras_pansharp.models.registry import MODEL_NAMES, get_model
from keras_pansharp.sensors import generic_sensor, get_sensor

FLAGS = flags.FLAGS
flags.DEFINE_enum("data", "synthetic", ["synthetic", "shared"], "Which data.")
flags.DEFINE_string(
    "shared_dir",
    str(Path(__file__).resolve().parents[2] / "shared" / "data"),
    "Folder of the real scenes (for --data=shared).",
)
flags.DEFINE_enum("model", "pantiny", list(MODEL_NAMES), "Model.")
flags.DEFINE_integer("total_steps", 240, "Optimiser steps of the joint model.")
flags.DEFINE_enum("budget", "total", ["total", "per_model"], "Step budget rule.")
flags.DEFINE_integer("epochs", 4, "Epochs per model (steps are split evenly).")
flags.DEFINE_integer("batch_size", 8, "Batch size.")
flags.DEFINE_integer("patch_size", 64, "PAN-scale training patch size.")
flags.DEFINE_integer("test_images", 0, "Max test images per sensor (0: all).")
flags.DEFINE_bool("classical", True, "Also score EXP, BT-H, MTF-GLP-HPM-R.")
flags.DEFINE_string("output_dir", "runs/single_vs_multi", "Output directory.")
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_integer("verbose", 2, "Keras fit verbosity.")

# Real scenes of ../shared/data: (ms file, pan file, sensor).
SHARED_SCENES = {
    "wv3": ("wv3_spacenet_fr/ms.tif", "wv3_spacenet_fr/pan.tif", "wv3"),
    "qb": ("qb_abfnet/fr_ms.tif", "qb_abfnet/fr_pan.tif", "qb"),
    "pleiades": ("pleiades_urban_fr/ms.tif", "pleiades_urban_fr/pan.tif", None),
    "spot6": ("spot6_cropland_fr/ms.tif", "spot6_cropland_fr/pan.tif", None),
}
# Toolbox classical methods, by the names keras_pansharp.evaluate knows.
CLASSICAL = ("EXP", "BT-H", "MTF-GLP-HPM-R")


def _shared_sources(cache: Path):
    """Cut the real scenes into train / RR-test / FR-test readers."""
    root = Path(FLAGS.shared_dir)
    if not root.is_dir():
        raise app.UsageError(f"--shared_dir {root} does not exist")
    out = {"train": {}, "test_rr": {}, "test_fr": {}}
    for name, (ms_file, pan_file, sensor_name) in SHARED_SCENES.items():
        # Pleiades and SPOT-6 are not in the registry: 12-bit, toolbox defaults.
        sensor = (
            get_sensor(sensor_name)
            if sensor_name
            else generic_sensor(4, bit_depth=12, name=name.upper())
        )
        scene = read_scene(root / ms_file, root / pan_file, sensor=sensor)
        h = scene.ms.shape[0]
        r = int(0.75 * h) // 4 * 4  # train rows (MS), multiple of 4
        t = (h - r) // 4 * 4  # held-out rows
        train = Scene(scene.ms[:r], scene.pan[: 4 * r], sensor, source=f"{name} top")
        test = Scene(
            scene.ms[r : r + t], scene.pan[4 * r : 4 * (r + t)], sensor, source=name
        )
        paths = {}
        for split, sc, stride in (("train", train, 16), ("test_rr", test, 64)):
            p = cache / f"{split}_{name}.h5"
            if not p.is_file():
                make_training_set(
                    sc, sensor=sensor, patch_size=64, stride=stride, out=p
                )
            paths[split] = p
        out["train"][name] = PanCollectionReader(paths["train"], sensor=sensor)
        out["test_rr"][name] = PanCollectionReader(paths["test_rr"], sensor=sensor)
        # FR test: PAN 128 x 128 crops (MS 32 x 32) of the held-out rows.
        ms_t, pan_t = test.ms, test.pan
        crops = [
            (i, j)
            for i in range(0, ms_t.shape[0] - 31, 32)
            for j in range(0, ms_t.shape[1] - 31, 32)
        ]
        ms_c = np.stack([ms_t[i : i + 32, j : j + 32] for i, j in crops])
        pan_c = np.stack(
            [pan_t[4 * i : 4 * i + 128, 4 * j : 4 * j + 128] for i, j in crops]
        )
        out["test_fr"][name] = ArrayReader(
            ms_c, pan_c, sensor=sensor, name=f"{name} FR"
        )
    return out


def _eval_sets(sources):
    """Test data loaded once (normalised arrays + sensor) for every model."""
    n = FLAGS.test_images or None
    return {
        split: load_sources(sources[split], bands="rgbn", max_images=n, what=split)
        for split in ("test_rr", "test_fr")
    }


def _train(name, train_sources, steps):
    keras.utils.set_random_seed(FLAGS.seed)
    epochs = max(1, min(FLAGS.epochs, steps))
    per_epoch = max(1, steps // epochs)
    ds = MultiSensorDataset(
        train_sources,
        batch_size=FLAGS.batch_size,
        patch_size=FLAGS.patch_size,
        bands="rgbn",
        balance="equal",
        seed=FLAGS.seed,
        steps_per_epoch=per_epoch,
    )
    model = get_model(FLAGS.model, bands=4)
    recipes.paper(model, epochs=epochs, steps_per_epoch=per_epoch)
    t = time.time()
    print(f"--- training {name}: {epochs} x {per_epoch} steps on {list(train_sources)}")
    model.fit(ds, epochs=epochs, verbose=FLAGS.verbose)
    print(f"    {time.time() - t:.0f} s")
    return model, epochs * per_epoch


def _score(predictor, evals, sensor_names):
    """Per-sensor table of `predictor` on the RR and FR test sets."""
    return evaluate(
        predictor,
        rr={s: evals["test_rr"][s] for s in sensor_names},
        fr={s: evals["test_fr"][s] for s in sensor_names},
    )


def main(argv):
    del argv
    from keras_pansharp.utils.perf import retain_freed_host_memory

    retain_freed_host_memory(jax_only=True)  # glibc keeps XLA's buffers (JAX)
    logging.set_verbosity(logging.WARNING)
    t0 = time.time()
    out = Path(FLAGS.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if FLAGS.data == "synthetic":
        sources = synthetic.ensure_datasets()
    else:
        cache = out / "data"
        cache.mkdir(exist_ok=True)
        sources = _shared_sources(cache)
    sensors = list(sources["train"])
    evals = _eval_sets(sources)

    n = len(sensors)
    single_steps = (
        FLAGS.total_steps // n if FLAGS.budget == "total" else FLAGS.total_steps
    )
    steps_used = {}

    joint, steps_used["joint"] = _train("joint", sources["train"], FLAGS.total_steps)
    joint_table = _score(joint, evals, sensors)
    single_tables = []
    for s in sensors:
        single, steps_used[f"single_{s}"] = _train(
            f"single {s}", {s: sources["train"][s]}, single_steps
        )
        single_tables.append(_score(single, evals, [s]))
    tables = {
        "single": EvaluationTable.merge(single_tables),
        "joint": joint_table,
    }
    if FLAGS.classical:
        for label in CLASSICAL:
            tables[label] = _score(label, evals, sensors)
    # Rows "<sensor> / <method>", grouped per sensor.
    table = EvaluationTable.compare(tables)

    title = (
        f"{FLAGS.model} on {FLAGS.data} data ({', '.join(sensors)}); joint "
        f"{steps_used['joint']} steps, single {single_steps} steps each, batch "
        f"{FLAGS.batch_size}, patch {FLAGS.patch_size}; backend "
        f"{keras.backend.backend()}"
    )
    print(f"\n{title}\n\n{table.to_markdown()}")
    table.meta = {
        "title": title,
        "data": FLAGS.data,
        "model": FLAGS.model,
        "budget": FLAGS.budget,
        "steps": steps_used,
        "batch_size": FLAGS.batch_size,
        "patch_size": FLAGS.patch_size,
        "backend": keras.backend.backend(),
        "sam_units": "degrees",
        "seconds": round(time.time() - t0, 1),
    }
    table.save(out / "single_vs_multi")
    print(
        f"\nSaved {out / 'single_vs_multi.csv'}, .json and .md "
        f"({time.time() - t0:.0f} s)"
    )


if __name__ == "__main__":
    app.run(main)
