"""Train one pan-sharpening model jointly on several sensors (the main job).

With no flags: PanTiny trained with the paper's recipe on the built-in
synthetic WV2 + WV3 + GF2 data (built once into the cache, no download),
evaluated during training at reduced resolution (RR, Wald's protocol) and
full resolution (FR, no reference), best checkpoint by FR HQNR, final
per-sensor RR/FR table (`keras_pansharp.evaluate`) printed and saved as CSV,
JSON and Markdown, SavedModel exported.

    python examples/train_multi.py

Your own PanCollection files (repeat a flag per file; SENSOR=PATH):

    python examples/train_multi.py \
        --train wv3=train_wv3.h5 --train gf2=train_gf2.h5 --train wv2=train_wv2.h5 \
        --valid wv3=valid_wv3.h5 --valid gf2=valid_gf2.h5 --valid wv2=valid_wv2.h5 \
        --test_rr wv3=test_wv3_multiExm1.h5 --test_fr wv3=test_wv3_OrigScale_multiExm1.h5 \
        --epochs 500 --batch_size 16 --patch_size 64 --output_dir runs/paper

Interrupt it at any time and run the same command again: `BackupAndRestore`
resumes from the last finished epoch.

Outputs in `--output_dir`: `best.keras` (best FR HQNR), `last.keras`,
`history.csv` (per-epoch loss and evaluation keys), `results.csv` /
`results.json` / `results.md` (final table, `keras_pansharp.EvaluationTable`),
`saved_model/` (TensorFlow SavedModel).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from absl import app, flags, logging

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402  (sibling helper module)
import keras  # noqa: E402

from keras_pansharp import recipes  # noqa: E402
from keras_pansharp.callbacks import FREvaluation, RREvaluation  # noqa: E402
from keras_pansharp.data import MultiSensorDataset, synthetic  # noqa: E402
from keras_pansharp.evaluation import evaluate  # noqa: E402
from keras_pansharp.export import export_saved_model  # noqa: E402
from keras_pansharp.models.registry import MODEL_NAMES, get_model  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_enum("model", "pantiny", list(MODEL_NAMES), "Model to train.")
flags.DEFINE_list("sensors", ["wv2", "wv3", "gf2"], "Synthetic sensors (default data).")
flags.DEFINE_multi_string("train", None, "Training file SENSOR=PATH (repeatable).")
flags.DEFINE_multi_string("valid", None, "RR validation file SENSOR=PATH.")
flags.DEFINE_multi_string("test_rr", None, "RR test file SENSOR=PATH (final table).")
flags.DEFINE_multi_string("test_fr", None, "FR test file SENSOR=PATH (final table).")
flags.DEFINE_integer("epochs", 8, "Epochs.")
flags.DEFINE_integer("steps_per_epoch", 40, "Optimiser steps per epoch (0: one pass).")
flags.DEFINE_integer("batch_size", 8, "Batch size (the paper: 16).")
flags.DEFINE_integer("patch_size", 64, "PAN-scale training patch size (paper: 128).")
flags.DEFINE_enum("bands", "rgbn", ["rgbn", "native"], "Band mode of the data.")
flags.DEFINE_enum(
    "balance", "equal", ["equal", "proportional"], "How often each sensor is drawn."
)
flags.DEFINE_integer(
    "eval_every",
    1,
    "Run the RR/FR evaluation every N epochs (history.csv columns are fixed at "
    "the first epoch, so keep 1 to log them every epoch).",
)
flags.DEFINE_integer("eval_samples", 16, "Max validation patches per sensor.")
flags.DEFINE_integer("test_images", 0, "Max test images per sensor (0: all).")
flags.DEFINE_integer("dim_cut", 0, "RR border cut of the final table (21 for 256^2).")
flags.DEFINE_enum(
    "jit_compile", "auto", ["auto", "true", "false"], "XLA (auto: per backend)."
)
flags.DEFINE_string("output_dir", "runs/train_multi", "Output directory.")
flags.DEFINE_bool("export", True, "Export a TensorFlow SavedModel at the end.")
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_integer("verbose", 1, "Keras verbosity (1: progress bars).")


def _sources():
    """Return `{split: {sensor: path or [paths]}}` from flags or synthetic data."""
    if FLAGS.train:
        out = {
            "train": _common.parse_sources(FLAGS.train, "train"),
            "valid": _common.parse_sources(FLAGS.valid, "valid"),
            "test_rr": _common.parse_sources(FLAGS.test_rr, "test_rr"),
            "test_fr": _common.parse_sources(FLAGS.test_fr, "test_fr"),
        }
        if not out["valid"] and not out["test_fr"]:
            raise app.UsageError(
                "with --train, give --valid and/or --test_fr files to evaluate on"
            )
        return out
    if FLAGS.valid or FLAGS.test_rr or FLAGS.test_fr:
        raise app.UsageError("--valid/--test_rr/--test_fr need --train files too")
    print(f"Using built-in synthetic data for {FLAGS.sensors} (cached after first run)")
    return synthetic.ensure_datasets(tuple(FLAGS.sensors))


def _eval_data(sources, max_samples):
    """`{served sensor name: arrays}` for the evaluation callbacks."""
    if not sources:
        return None
    ds = MultiSensorDataset.for_evaluation(
        sources, batch_size=4, bands=FLAGS.bands, patch_size=None
    )
    return ds.evaluation_data(max_samples=max_samples or None)


def main(argv):
    del argv
    from keras_pansharp.utils.perf import retain_freed_host_memory

    retain_freed_host_memory(jax_only=True)  # glibc keeps XLA's buffers (JAX)
    logging.set_verbosity(logging.WARNING)  # keep TF's INFO logs off the console
    t_start = time.time()
    keras.utils.set_random_seed(FLAGS.seed)
    out = Path(FLAGS.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = _sources()

    steps = FLAGS.steps_per_epoch or None
    train = MultiSensorDataset(
        paths["train"],
        batch_size=FLAGS.batch_size,
        patch_size=FLAGS.patch_size,
        bands=FLAGS.bands,
        balance=FLAGS.balance,
        seed=FLAGS.seed,
        steps_per_epoch=steps,
    )
    band_counts = {s.num_bands for s in train.sensors.values()}
    if len(band_counts) != 1:
        raise app.UsageError(
            f"--bands=native with sensors of different band counts "
            f"({ {k: s.num_bands for k, s in train.sensors.items()} }): one model "
            "cannot take both; use --bands=rgbn"
        )
    bands = band_counts.pop()

    valid = _eval_data(paths.get("valid"), FLAGS.eval_samples)
    fr = _eval_data(paths.get("test_fr"), FLAGS.eval_samples)

    name = FLAGS.model
    model = get_model(name, bands=bands)
    jit = {"auto": "auto", "true": True, "false": False}[FLAGS.jit_compile]
    recipes.paper(
        model, epochs=FLAGS.epochs, steps_per_epoch=len(train), jit_compile=jit
    )
    print(
        f"{name}: {model.count_params():,} parameters, {bands} bands; "
        f"{len(train)} steps/epoch x {FLAGS.epochs} epochs, batch "
        f"{FLAGS.batch_size}, patch {FLAGS.patch_size}; backend "
        f"{keras.backend.backend()}, jit_compile={model.jit_compile}"
    )

    # Evaluation callbacks first: they write val_* / fr_* keys into the logs
    # that ModelCheckpoint and CSVLogger read.
    callbacks = []
    monitor = None
    if valid:
        callbacks.append(
            RREvaluation(
                valid,
                metrics=("q2n", "sam", "ergas"),
                every_n_epochs=FLAGS.eval_every,
            )
        )
        monitor = "val_q2n"
    if fr:
        callbacks.append(FREvaluation(fr, every_n_epochs=FLAGS.eval_every))
        monitor = "fr_hqnr"
    best_path = out / "best.keras"
    callbacks += [
        keras.callbacks.ModelCheckpoint(
            str(best_path), monitor=monitor, mode="max", save_best_only=True
        ),
        keras.callbacks.BackupAndRestore(str(out / "backup")),
        keras.callbacks.CSVLogger(str(out / "history.csv"), append=True),
    ]
    model.fit(train, epochs=FLAGS.epochs, callbacks=callbacks, verbose=FLAGS.verbose)
    tmp_last = out / ".last.tmp.keras"
    model.save(tmp_last)
    os.replace(tmp_last, out / "last.keras")

    best = model
    if best_path.is_file():
        best = keras.saving.load_model(best_path, compile=False)
        print(f"Best checkpoint by {monitor}: {best_path}")

    # Final per-sensor table on the test sets (validation data if none).
    table = evaluate(
        best,
        rr=paths.get("test_rr") or paths.get("valid") or None,
        fr=paths.get("test_fr") or None,
        bands=FLAGS.bands,
        max_images=FLAGS.test_images or None,
        dim_cut=FLAGS.dim_cut,
        batch_size=4,
    )
    print(
        f"\nFinal scores of {name} (mean over test images per sensor):\n"
        f"{table.to_markdown()}"
    )
    table.meta.update(
        {
            "model": name,
            "backend": keras.backend.backend(),
            "epochs": FLAGS.epochs,
            "steps_per_epoch": len(train),
            "batch_size": FLAGS.batch_size,
            "patch_size": FLAGS.patch_size,
            "bands": FLAGS.bands,
            "balance": FLAGS.balance,
            "checkpoint": str(best_path if best is not model else out / "last.keras"),
        }
    )
    saved = table.save(out / "results")
    print(f"Saved {saved['csv']}, {saved['json']} and {saved['md']}")

    if FLAGS.export:
        path = export_saved_model(best, out / "saved_model", overwrite=True)
        print(f"Exported SavedModel to {path} (serving_default: ms, pan -> fused)")
    print(f"Done in {time.time() - t_start:.0f} s")


if __name__ == "__main__":
    app.run(main)
