"""Layers of keras_pansharp (upsamplers and PanTiny's building blocks)."""

from __future__ import annotations

import contextlib

import keras
import numpy as np
import pytest
from keras import ops

from keras_pansharp.layers import BicubicUpsample, Interp23Tap
from keras_pansharp.signal.kernels import interp23tap_kernel
from tests.test_case import TestCase, to_numpy

GOLDEN_CASES = (
    "fr_qb",
    "fr_wv3_spacenet",
    "fr_wv3_zpnn",
    "rr_pleiades",
    "rr_qb",
    "rr_wv3_patch0",
)


def _x64():
    """float64 needs `jax_enable_x64` on JAX; a no-op on other backends."""
    if keras.backend.backend() == "jax":
        import jax

        return jax.enable_x64(True)
    return contextlib.nullcontext()


def interp23tap_reference(x: np.ndarray, ratio: int = 4) -> np.ndarray:
    """Literal NumPy port of the toolbox algorithm (zero insertion + circular
    correlation with the 23-tap kernel), (H, W, C) float64."""
    h = interp23tap_kernel()
    out = np.asarray(x, np.float64)
    for stage in range(ratio // 2):
        r, c, b = out.shape
        up = np.zeros((2 * r, 2 * c, b))
        if stage == 0:
            up[1::2, 1::2] = out
        else:
            up[0::2, 0::2] = out
        for axis in (0, 1):
            n = up.shape[axis]
            acc = np.zeros_like(up)
            for k in range(23):
                acc += h[k] * np.take(up, (np.arange(n) + k - 11) % n, axis=axis)
            up = acc
        out = up
    return out


class TestInterp23Tap(TestCase):
    def test_layer_contract(self, rng):
        self.run_layer_test(
            Interp23Tap,
            {"ratio": 4},
            rng.random((2, 8, 6, 3)).astype("float32"),
            expected_output_shape=(2, 32, 24, 3),
            expected_num_trainable_weights=0,
        )
        self.run_layer_test(
            Interp23Tap,
            {"ratio": 2},
            rng.random((1, 5, 7, 2)).astype("float32"),
            expected_output_shape=(1, 10, 14, 2),
        )
        with pytest.raises(ValueError, match="ratio"):
            Interp23Tap(ratio=3)

    @pytest.mark.parametrize("ratio", [2, 4])
    @pytest.mark.parametrize("size", [(1, 1), (3, 5), (13, 8)])
    def test_matches_literal_reference_any_size(self, ratio, size):
        # Tiny sizes exercise the circular wrap beyond one period.
        x = np.random.default_rng(3).normal(size=(2, *size, 3))
        with _x64():
            y = to_numpy(Interp23Tap(ratio, dtype="float64")(x))
        assert y.dtype == np.float64
        for i in range(2):
            np.testing.assert_allclose(
                y[i], interp23tap_reference(x[i], ratio), rtol=1e-12, atol=1e-12
            )
        if ratio == 4:
            np.testing.assert_array_equal(y[:, 2::4, 2::4], x)
        else:
            np.testing.assert_array_equal(y[:, 1::2, 1::2], x)

    @pytest.mark.parametrize("case", GOLDEN_CASES)
    def test_matches_golden(self, golden_dir, case):
        data = np.load(golden_dir / f"{case}.npz")
        pairs = [("ms_lr", "interp23tap_ms")]
        if "wald_ms_lr" in data.files:
            pairs.append(("wald_ms_lr", "wald_interp23tap_ms"))
        for src, ref_key in pairs:
            x, ref = data[src][None], data[ref_key]
            scale = np.abs(ref).max()
            with _x64():
                y64 = to_numpy(Interp23Tap(4, dtype="float64")(x))[0]
            assert y64.dtype == np.float64
            np.testing.assert_allclose(y64, ref, rtol=1e-9, atol=1e-9 * scale)
            y32 = to_numpy(Interp23Tap(4)(x.astype("float32")))[0]
            assert y32.dtype == np.float32
            np.testing.assert_allclose(y32, ref, rtol=1e-5, atol=1e-5 * scale)

    def test_dynamic_spatial_size_in_model(self, rng):
        inp = keras.Input((None, None, 4))
        model = keras.Model(inp, Interp23Tap(4)(inp))
        for shape in ((1, 4, 4, 4), (2, 6, 10, 4)):
            x = rng.random(shape).astype("float32")
            y = model.predict(x, verbose=0)
            assert y.shape == (shape[0], 4 * shape[1], 4 * shape[2], 4)
            self.assertAllClose(y[:, 2::4, 2::4], x, atol=1e-6)

    def test_rejects_integer_input(self):
        with pytest.raises(ValueError, match="floating"):
            Interp23Tap(4)(np.ones((1, 4, 4, 2), "int32"))


class TestBicubicUpsample(TestCase):
    def test_layer_contract(self, rng):
        x = rng.random((2, 4, 6, 3)).astype("float32")
        out = self.run_layer_test(
            BicubicUpsample,
            {"ratio": 4},
            x,
            expected_output_shape=(2, 16, 24, 3),
            expected_num_trainable_weights=0,
        )
        ref = ops.image.resize(x, (16, 24), interpolation="bicubic")
        self.assertAllClose(out, ref, atol=1e-6)
        # Constant images stay constant (interpolating kernel sums to one).
        const = BicubicUpsample(4)(np.full((1, 3, 3, 1), 0.25, "float32"))
        self.assertAllClose(const, np.full((1, 12, 12, 1), 0.25), atol=1e-6)
