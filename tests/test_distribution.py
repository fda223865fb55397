"""Data-parallel training on two devices (run in subprocesses: the device
flags must be set before TensorFlow / JAX initialise).

- JAX: `keras.distribution.DataParallel` over two virtual CPU devices
  (`XLA_FLAGS=--xla_force_host_platform_device_count=2`).
- TensorFlow: `tf.distribute.MirroredStrategy` over two logical CPUs.

Each fits a small PanTiny with the paper's recipe on a `MultiSensorDataset`
mixing three sensors, and checks that the global batch was split across both
devices and that training changed the weights identically everywhere.
"""

import json
import os
import subprocess
import sys

import keras
import pytest

_COMMON = r"""
import json, sys
import numpy as np
import keras
import keras_pansharp
from keras_pansharp import recipes
from keras_pansharp.data import MultiSensorDataset
from keras_pansharp.models.pantiny import PanTiny

def sources():
    rng = np.random.default_rng(0)
    out = {}
    for name, bands, mx in (("wv2", 8, 2047), ("wv3", 8, 2047), ("gf2", 4, 1023)):
        gt = rng.integers(0, mx, (4, 32, 32, bands)).astype("float32")
        ms = gt[:, ::4, ::4]
        pan = gt.mean(-1)
        out[name] = {"ms": ms, "pan": pan, "gt": gt}
    return out

def make_model():
    return PanTiny(bands=4, dim=8, num_heads=2, encoder_depth=1, body_depth=1)

ds = MultiSensorDataset(sources(), batch_size=4, patch_size=32, seed=0,
                        steps_per_epoch=2)
"""

_JAX = (
    _COMMON
    + r"""
import jax
devices = jax.devices()
assert len(devices) == 2, devices
dist = keras.distribution.DataParallel(devices=devices)
keras.distribution.set_distribution(dist)
model = make_model()
recipes.paper(model, epochs=1, steps_per_epoch=2)
before = [np.array(w) for w in model.get_weights()]
hist = model.fit(ds, epochs=1, verbose=0)
w = model.trainable_weights[0].value
shards = [s.device for s in w.addressable_shards]
x, y = ds[0]
batch = dist.distribute_dataset  # API presence
sharding = dist.get_data_layout(y.shape).backend_layout
placed = jax.device_put(y, sharding)
after = model.get_weights()
print(json.dumps({
    "loss": float(hist.history["loss"][0]),
    "weight_devices": len(set(shards)),
    "batch_shards": sorted(tuple(s.data.shape) for s in placed.addressable_shards),
    "changed": any(not np.array_equal(a, b) for a, b in zip(before, after)),
}))
"""
)

_TF = (
    _COMMON
    + r"""
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    model = make_model()
    recipes.paper(model, epochs=1, steps_per_epoch=2)
before = [np.array(w) for w in model.get_weights()]
hist = model.fit(ds, epochs=1, verbose=0)
var = model.trainable_weights[0].value
replicas = [v.numpy() for v in strategy.experimental_local_results(var)]
dist_ds = strategy.experimental_distribute_dataset(
    ds.as_tf_dataset().take(1) if hasattr(ds, "as_tf_dataset") else None)
shapes = []
for batch in dist_ds:
    per = strategy.experimental_local_results(batch[1])
    shapes = sorted(tuple(t.shape) for t in per)
after = model.get_weights()
print(json.dumps({
    "loss": float(hist.history["loss"][0]),
    "weight_devices": strategy.num_replicas_in_sync,
    "replicas_equal": all(np.array_equal(replicas[0], r) for r in replicas),
    "batch_shards": shapes,
    "changed": any(not np.array_equal(a, b) for a, b in zip(before, after)),
}))
"""
)


def _run(code, backend, extra_env):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
    env.update(extra_env)
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(
    keras.backend.backend() != "jax", reason="runs in the KERAS_BACKEND=jax pass"
)
def test_jax_data_parallel_two_cpu_devices():
    res = _run(_JAX, "jax", {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
    assert res["changed"] and res["loss"] == res["loss"]  # finite, trained
    assert res["weight_devices"] == 2  # weights replicated on both devices
    # Global batch of 4 split into two shards of 2 along the batch axis.
    assert [s[0] for s in res["batch_shards"]] == [2, 2]


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="runs in the KERAS_BACKEND=tensorflow pass",
)
def test_tf_mirrored_strategy_two_logical_cpus():
    res = _run(_TF, "tensorflow", {})
    assert res["changed"] and res["loss"] == res["loss"]
    assert res["weight_devices"] == 2 and res["replicas_equal"]
    assert [s[0] for s in res["batch_shards"]] == [2, 2]
