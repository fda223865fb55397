"""Shared test base, in the style of keras-hub's `TestCase`.

Every layer goes through `run_layer_test` and every model through
`run_model_test` + `run_model_saving_test`, so all of them are checked the same
way: output shape, config round trip, `.keras` save/load with equal outputs and
one `fit` step that changes the weights.
"""

from __future__ import annotations

import os
import tempfile

import keras
import numpy as np
from keras import ops

# The cases in ../shared/golden (see its README): inputs, intermediates and
# toolbox outputs of each, in <case>.npz; scalar metrics in golden.json.
GOLDEN_CASES = (
    "fr_qb",
    "fr_wv3_spacenet",
    "fr_wv3_zpnn",
    "rr_pleiades",
    "rr_qb",
    "rr_wv3_patch0",
)


def to_numpy(x):
    """Convert a tensor, a dict or a list of tensors to NumPy."""
    if isinstance(x, dict):
        return {k: to_numpy(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(to_numpy(v) for v in x)
    return ops.convert_to_numpy(x)


def _batch_size(data):
    if isinstance(data, dict):
        return next(iter(data.values())).shape[0]
    if isinstance(data, (list, tuple)):
        return data[0].shape[0]
    return data.shape[0]


class TestCase:
    """Mixin with checks shared by all layer and model tests (pytest style)."""

    atol = 1e-5
    rtol = 1e-5

    def assertAllClose(self, a, b, atol=None, rtol=None, msg=None):
        a, b = to_numpy(a), to_numpy(b)
        if isinstance(a, dict):
            assert set(a) == set(b), msg
            for k in a:
                self.assertAllClose(a[k], b[k], atol, rtol, msg)
            return
        np.testing.assert_allclose(
            np.asarray(a),
            np.asarray(b),
            atol=self.atol if atol is None else atol,
            rtol=self.rtol if rtol is None else rtol,
            err_msg=msg or "",
        )

    # ------------------------------------------------------------------ layers
    def run_layer_test(
        self,
        cls,
        init_kwargs: dict,
        input_data,
        expected_output_shape=None,
        expected_num_trainable_weights: int | None = None,
        run_training_check: bool = True,
        run_saving_check: bool = True,
    ):
        """Check a `keras.layers.Layer` subclass.

        - `get_config()` / `from_config()` round trip gives an equal config;
        - call on `input_data` gives `expected_output_shape`, equal to
          `compute_output_shape` (when the layer implements it);
        - a clone built from config and given the same weights gives equal
          outputs;
        - wrapped in a model, one `fit` step runs and changes the weights;
        - `.keras` save/load of that model gives equal outputs.
        """
        layer = cls(**init_kwargs)
        config = layer.get_config()
        clone = cls.from_config(config)
        assert clone.get_config() == config

        if isinstance(input_data, dict):
            output = layer(**input_data)
        else:
            output = layer(input_data)
        out_shape = tuple(ops.shape(output))
        if expected_output_shape is not None:
            assert out_shape == tuple(expected_output_shape), (
                out_shape,
                expected_output_shape,
            )
        if not isinstance(input_data, dict):
            try:
                cos = layer.compute_output_shape(tuple(ops.shape(input_data)))
            except NotImplementedError:
                cos = None
            if cos is not None:
                assert tuple(cos) == out_shape, (cos, out_shape)
        if expected_num_trainable_weights is not None:
            assert len(layer.trainable_weights) == expected_num_trainable_weights

        # Rebuilt from config with same weights -> same outputs.
        clone = cls.from_config(config)
        if isinstance(input_data, dict):
            clone(**input_data)
        else:
            clone(input_data)
        clone.set_weights(layer.get_weights())
        out2 = (
            clone(**input_data) if isinstance(input_data, dict) else clone(input_data)
        )
        self.assertAllClose(output, out2)

        if isinstance(input_data, dict):
            return output

        # Wrap in a functional model for fit / saving checks.
        inp = keras.Input(shape=tuple(ops.shape(input_data))[1:])
        model = keras.Model(inp, cls.from_config(config)(inp))
        if run_training_check and model.trainable_weights:
            x = to_numpy(input_data)
            y = to_numpy(model(x))
            y = y + np.random.default_rng(1).normal(size=y.shape).astype(y.dtype)
            self._fit_changes_weights(model, x, y)
        if run_saving_check:
            self._save_load_equal(model, to_numpy(input_data))
        return output

    # ------------------------------------------------------------------ models
    def run_model_test(
        self,
        cls,
        init_kwargs: dict,
        input_data,
        expected_output_shape=None,
        expected_num_params: int | None = None,
        run_training_check: bool = True,
    ):
        """Check a functional-subclass model: shape, params, config, fit step."""
        model = cls(**init_kwargs)
        if expected_num_params is not None:
            assert model.count_params() == expected_num_params, (
                model.count_params(),
                expected_num_params,
            )
        # Config holds exactly the constructor arguments and round trips.
        config = model.get_config()
        for key in init_kwargs:
            assert key in config, f"get_config() lacks constructor argument {key!r}"
        revived = cls.from_config(config)
        assert revived.get_config() == config
        assert revived.count_params() == model.count_params()

        output = model(input_data)
        if expected_output_shape is not None:
            assert tuple(ops.shape(output)) == tuple(expected_output_shape)
        if run_training_check:
            x = to_numpy(input_data)
            y = to_numpy(output)
            y = y + 0.1 * np.random.default_rng(1).normal(size=y.shape).astype(y.dtype)
            self._fit_changes_weights(model, x, y)
        return model

    def run_model_saving_test(self, cls, init_kwargs: dict, input_data):
        """`.keras` save/load of a model gives identical outputs and config."""
        model = cls(**init_kwargs)
        return self._save_load_equal(model, to_numpy(input_data))

    # ----------------------------------------------------------------- helpers
    def _fit_changes_weights(self, model, x, y):
        model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mae")
        before = [np.array(w) for w in to_numpy(model.trainable_weights)]
        history = model.fit(x, y, batch_size=_batch_size(x), epochs=1, verbose=0)
        loss = history.history["loss"][0]
        assert np.isfinite(loss), f"non-finite loss {loss}"
        after = to_numpy(model.trainable_weights)
        changed = [not np.array_equal(b, a) for b, a in zip(before, after)]
        assert any(changed), "one fit step did not change any weight"

    def _save_load_equal(self, model, x):
        ref = to_numpy(model(x))
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.keras")
            model.save(path)
            loaded = keras.saving.load_model(path)
        assert type(loaded) is type(model) or isinstance(loaded, keras.Model)
        self.assertAllClose(ref, loaded(x), atol=1e-6, rtol=1e-6)
        return loaded
