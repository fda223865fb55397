"""Train the pretrained `pantiny_multisensor` weights (no ground truth needed).

PanTiny (4 bands: blue, green, red, NIR; inputs divided by each sensor's max
DN) trained on random crops of real full-resolution scenes of several
sensors at once with the no-reference `NoReferenceLoss` (lambda-PNN's
spectral + structural consistency), flips/transpositions and radiometric
augmentation, plus crops of each scene's own Wald-degraded copy with its MS
as the reference and the paper's supervised loss (`--reduced_resolution
--supervised_weight=1`, the default; still no external ground truth). The
scenes are those of `../shared/data` (`real_scenes.py`).

Reproduce the shipped file (the model card records seed, data, steps, wall
time and SHA-256):

    python examples/pretrain.py --output=keras_pansharp/presets/pantiny_multisensor.weights.h5 --overwrite

Fine-tune from the shipped weights on your own scenes instead:

    model = keras_pansharp.PanTiny.from_preset("pantiny_multisensor")
    ds = keras_pansharp.FullResolutionDataset({"mine": scene}, steps_per_epoch=100)
    keras_pansharp.recipes.no_reference(model, ds.loss(), total_steps=500,
                                        learning_rate=1e-4)
    model.fit(ds, epochs=5)
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import real_scenes  # noqa: E402
from absl import app, flags  # noqa: E402

import keras_pansharp as kp  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("shared_dir", str(real_scenes.DEFAULT_ROOT), "Real scenes.")
flags.DEFINE_list(
    "train_scenes", list(real_scenes.TRAINABLE), "Scenes to train on (licensed)."
)
flags.DEFINE_integer("steps", 900, "Optimiser steps.")
flags.DEFINE_integer("batch_size", 8, "Crops per step.")
flags.DEFINE_integer("patch_size", 64, "PAN-scale crop side.")
flags.DEFINE_float("learning_rate", 5e-4, "Initial learning rate (cosine decay).")
flags.DEFINE_bool("radiometric", True, "Radiometric augmentation.")
_LOSS = kp.recipes.NO_REFERENCE_LOSS
flags.DEFINE_float("beta", _LOSS["beta"], "Weight of the loss's D_lambda^K term.")
flags.DEFINE_float("gamma", _LOSS["gamma"], "Weight of the structural term.")
flags.DEFINE_float("delta", _LOSS["delta"], "Weight of the QNR D_s term.")
flags.DEFINE_integer("block_size", _LOSS["block_size"], "Q2n block (MS pixels).")
flags.DEFINE_list("pan_gain", ["0.5", "2.5"], "PAN gain augmentation range.")
flags.DEFINE_bool(
    "reduced_resolution",
    True,
    "Also train on each scene's Wald-degraded copy (its MS as the reference).",
)
flags.DEFINE_float(
    "supervised_weight",
    1.0,
    "Supervised loss weight on the reduced-resolution crops (0: no-reference "
    "loss only, the recipe of the previous shipped weights).",
)
flags.DEFINE_integer("synthetic", 0, "Add this many synthetic scenes (WV2/WV3/GF2).")
flags.DEFINE_integer("seed", 0, "Random seed (weights and crops).")
flags.DEFINE_float(
    "detail_gain",
    0.5,
    "Scale of the learned residual after training (fused = LMS + g * residual; "
    "folded into the bias-free last convolution). 0.5 was chosen on the "
    "leave-one-scene-out folds by benchmarks/bench_detail_gain.py; 1 keeps the "
    "trained network as is.",
)
flags.DEFINE_string("output", "runs/pretrain/pantiny_multisensor.weights.h5", "Out.")
flags.DEFINE_bool("overwrite", False, "Replace an existing output file.")


def train(scenes: dict, verbose: int = 1) -> keras.Model:
    """Train the recipe on `{name: Scene}` with the current flags."""
    keras.utils.set_random_seed(FLAGS.seed)
    scenes = dict(scenes)
    for i in range(FLAGS.synthetic):
        name = ("wv2", "wv3", "gf2")[i % 3]
        scenes[f"synthetic_{name}_{i}"] = kp.data.synthetic.make_scene(
            name, size=512, seed=1000 + i
        )
    radiometric = None
    if FLAGS.radiometric:
        lo, hi = (float(v) for v in FLAGS.pan_gain)
        radiometric = kp.data.RadiometricAugmentation(pan_gain_range=(lo, hi))
    ds = kp.FullResolutionDataset(
        scenes,
        batch_size=FLAGS.batch_size,
        patch_size=FLAGS.patch_size,
        steps_per_epoch=FLAGS.steps,
        radiometric=radiometric,
        reduced_resolution=FLAGS.reduced_resolution,
        seed=FLAGS.seed,
    )
    model = kp.PanTiny(bands=4)
    kp.recipes.no_reference(
        model,
        ds.loss(
            beta=FLAGS.beta,
            gamma=FLAGS.gamma,
            delta=FLAGS.delta,
            block_size=FLAGS.block_size,
            supervised_weight=FLAGS.supervised_weight,
        ),
        total_steps=FLAGS.steps,
        learning_rate=FLAGS.learning_rate,
    )
    model.fit(ds, epochs=1, verbose=verbose)
    # The last convolution has no bias: this scales the residual by the gain.
    return kp.apply_detail_gain(model, FLAGS.detail_gain)


def main(argv):
    del argv
    from keras_pansharp.utils.perf import retain_freed_host_memory

    retain_freed_host_memory(jax_only=True)  # glibc keeps XLA's buffers (JAX)
    out = Path(FLAGS.output)
    if out.exists() and not FLAGS.overwrite:
        raise app.UsageError(f"{out} exists; pass --overwrite to replace it.")
    scenes = real_scenes.load_scenes(FLAGS.shared_dir, FLAGS.train_scenes)
    print(f"training on {sorted(scenes)} for {FLAGS.steps} steps", flush=True)
    t0 = time.perf_counter()
    model = train(scenes)
    seconds = time.perf_counter() - t0
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".weights.h5")
    os.close(fd)
    try:
        model.save_weights(tmp, overwrite=True)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600 files
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    record = {
        "file": str(out),
        "sha256": digest,
        "scenes": sorted(scenes),
        "steps": FLAGS.steps,
        "batch_size": FLAGS.batch_size,
        "patch_size": FLAGS.patch_size,
        "learning_rate": FLAGS.learning_rate,
        "radiometric": FLAGS.radiometric,
        "pan_gain": FLAGS.pan_gain,
        "beta": FLAGS.beta,
        "gamma": FLAGS.gamma,
        "delta": FLAGS.delta,
        "block_size": FLAGS.block_size,
        "reduced_resolution": FLAGS.reduced_resolution,
        "supervised_weight": FLAGS.supervised_weight,
        "synthetic": FLAGS.synthetic,
        "seed": FLAGS.seed,
        "detail_gain": FLAGS.detail_gain,
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "train_seconds": round(seconds, 1),
    }
    Path(str(out) + ".json").write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    app.run(main)
