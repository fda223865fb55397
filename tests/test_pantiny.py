"""PanTiny (REFERENCE §7)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_pansharp.layers import Interp23Tap
from keras_pansharp.models.pantiny import PanTiny
from tests.test_case import TestCase, to_numpy
from tests.test_layers import (
    block_weights,
    interp23tap_reference,
    np_block,
    np_conv,
    randomise_weights,
)

# Small architecture for the slower checks (fit, save/load); the layer code
# is identical to the default model's, only sizes differ.
SMALL = {"dim": 8, "num_heads": 2, "encoder_depth": 1, "body_depth": 1}


def _inputs(rng, bands=4, pan=32, batch=2, width=None, lms=False):
    width = pan if width is None else width
    d = {
        "ms": rng.random((batch, pan // 4, width // 4, bands)).astype("float32"),
        "pan": rng.random((batch, pan, width, 1)).astype("float32"),
    }
    if lms:
        d["lms"] = rng.random((batch, pan, width, bands)).astype("float32")
    return d


class TestPanTiny(TestCase):
    def test_parameter_counts(self):
        # REFERENCE §7: embed 1,008 + 6 blocks x 9,718 + fusion 14,364
        # + refine 7,056 + output 1,008 = 81,744 (4 bands).
        assert PanTiny().count_params() == 81744
        assert PanTiny.from_preset("pantiny").count_params() == 81744
        # 8 bands: embed and output convs grow by 9*28*4 each -> 83,760.
        assert PanTiny(bands=8).count_params() == 81744 + 2 * 9 * 28 * 4
        # Large (dim 40, 4 heads, 4 + 4 blocks), 4 bands, by hand:
        #   embed 9*4*40 = 1,440
        #   block: LN 2*80 = 160; attention 40*120 + 9*120 + 40*40 + 4 = 7,484;
        #          FFN 40*160 + 9*160 + 80*40 = 11,040  -> 18,684; x 8 = 149,472
        #   fusion 9*41*40 + 9*40*40 = 29,160; refine 9*40*40 = 14,400;
        #   output 9*40*4 = 1,440                         total = 195,912
        large = PanTiny.from_preset("pantiny_large")
        assert large.count_params() == 195912
        assert (large.dim, large.num_heads, large.encoder_depth) == (40, 4, 4)
        # 8 bands: + 2 * 9*40*4 = 198,792 (checked in the README table).

    def test_part_bookkeeping(self):
        model = PanTiny()
        counts = {layer.name: layer.count_params() for layer in model.layers}
        assert counts["embed"] == 1008
        assert counts["fusion_conv_1"] + counts["fusion_conv_2"] == 14364
        assert counts["refine"] == 7056
        assert counts["output"] == 1008
        blocks = [n for n in counts if "_block_" in n]
        assert len(blocks) == 6
        assert all(counts[n] == 9718 for n in blocks)
        # No convolution has a bias; the only 1-D weights are LN and temperature.
        for var in model.weights:
            assert "bias" not in var.path or "norm" in var.path, var.path

    def test_model_contract_4_bands(self, rng):
        self.run_model_test(
            PanTiny,
            {"bands": 4},
            _inputs(rng, bands=4, pan=32),
            expected_output_shape=(2, 32, 32, 4),
            expected_num_params=81744,
        )

    def test_shapes_8_bands_and_sizes(self, rng):
        # Shapes do not depend on the width/depth: the small architecture
        # keeps this fast (the default 4-band model runs in the test above).
        model = PanTiny(bands=8, **SMALL)
        for pan, width in ((64, 64), (32, 48)):
            out = model.predict(_inputs(rng, bands=8, pan=pan, width=width), verbose=0)
            assert out.shape == (2, pan, width, 8)
        small = PanTiny(bands=4, **SMALL)
        out = small.predict(_inputs(rng, bands=4, pan=64, batch=1), verbose=0)
        assert out.shape == (1, 64, 64, 4)
        with pytest.raises(ValueError, match="built for 8 bands"):
            model.predict(_inputs(rng, bands=4, pan=32), verbose=0)

    @pytest.mark.parametrize("with_lms", [False, True])
    def test_save_load(self, rng, with_lms):
        data = _inputs(rng, bands=4, pan=32, lms=with_lms)
        loaded = self.run_model_saving_test(PanTiny, dict(SMALL, bands=4), data)
        assert isinstance(loaded, PanTiny)
        assert loaded.get_config()["dim"] == 8

    def test_config_is_ctor_args(self):
        model = PanTiny(
            bands=8,
            dim=8,
            num_heads=4,
            encoder_depth=2,
            body_depth=1,
            fusion="conv_skip",
            upsampler="bicubic",
            name="pt",
        )
        config = model.get_config()
        assert config == {
            "bands": 8,
            "dim": 8,
            "num_heads": 4,
            "encoder_depth": 2,
            "body_depth": 1,
            "ffn_expansion_factor": 2.0,
            "fusion": "conv_skip",
            "upsampler": "bicubic",
            "calibrate_details": False,
            "name": "pt",
            "trainable": True,
        }
        revived = PanTiny.from_config(config)
        assert revived.get_config() == config
        # Registered under the package name.
        name = keras.saving.get_registered_name(PanTiny)
        assert name == "keras_pansharp>PanTiny"
        assert keras.saving.get_registered_object(name) is PanTiny

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="fusion"):
            PanTiny(fusion="attention")
        with pytest.raises(ValueError, match="upsampler"):
            PanTiny(upsampler="nearest")
        with pytest.raises(ValueError, match="divisible"):
            PanTiny(dim=28, num_heads=3)
        with pytest.raises(ValueError, match="preset"):
            PanTiny.from_preset("pantiny_huge")

    def test_optional_lms_and_upsamplers(self, rng):
        model = PanTiny(**SMALL)
        data = _inputs(rng, pan=32)
        lms = to_numpy(Interp23Tap(4)(data["ms"]))
        out = model.predict(data, verbose=0)
        self.assertAllClose(out, model.predict(dict(data, lms=lms), verbose=0))
        # A given lms is really used.
        other = model.predict(dict(data, lms=lms + 0.5), verbose=0)
        assert np.abs(other - out).max() > 0.1
        # bicubic variant differs from interp23tap only through the lms.
        bic = PanTiny(upsampler="bicubic", **SMALL)
        bic.set_weights(model.get_weights())
        self.assertAllClose(bic.predict(dict(data, lms=lms), verbose=0), out, atol=1e-5)
        assert np.abs(bic.predict(data, verbose=0) - out).max() > 1e-4

    def test_matches_numpy_forward(self, rng):
        """Whole network vs a literal NumPy transcription of REFERENCE §7."""
        for fusion in ("conv", "conv_skip"):
            model = PanTiny(
                bands=3,
                dim=8,
                num_heads=2,
                encoder_depth=2,
                body_depth=1,
                fusion=fusion,
            )
            data = _inputs(rng, bands=3, pan=16, batch=1)
            model.predict(data, verbose=0)
            for i, layer in enumerate(model.layers):
                randomise_weights(layer, seed=i, scale=0.2)
            out = to_numpy(model.predict(data, verbose=0))[0]

            def kernel(name, model=model):
                return to_numpy(model.get_layer(name).kernel).astype(np.float64)

            ms = data["ms"][0].astype(np.float64)
            pan = data["pan"][0].astype(np.float64)
            lms = interp23tap_reference(ms)
            x = np_conv(lms, kernel("embed"))
            for i in range(2):
                x = np_block(x, block_weights(model.get_layer(f"encoder_block_{i}")))
            y = np.concatenate([x, pan], axis=-1)
            y = np.maximum(np_conv(y, kernel("fusion_conv_1")), 0.0)
            y = np_conv(y, kernel("fusion_conv_2"))
            x = x + y if fusion == "conv_skip" else y
            x = np_block(x, block_weights(model.get_layer("body_block_0")))
            x = np_conv(x, kernel("refine"))
            ref = np_conv(x, kernel("output")) + lms
            np.testing.assert_allclose(out, ref, atol=2e-4, rtol=1e-4)

    def test_presets(self):
        assert set(PanTiny.presets) == {
            "pantiny",
            "pantiny_large",
            "pantiny_multisensor",
        }
        # Only the pretrained preset carries weights (shipped, hash-pinned).
        assert [k for k, v in PanTiny.presets.items() if "weights" in v] == [
            "pantiny_multisensor"
        ]
        assert len(PanTiny.presets["pantiny_multisensor"]["sha256"]) == 64
        model = PanTiny.from_preset("pantiny", bands=8, upsampler="bicubic")
        assert model.get_config()["upsampler"] == "bicubic"
        assert model.count_params() == 83760


def test_demo_runs(capsys):
    import importlib.util

    from tests.conftest import PROJECT_ROOT

    spec = importlib.util.spec_from_file_location(
        "demo", PROJECT_ROOT / "examples" / "demo.py"
    )
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    assert demo.main(["--size", "32"]) == 0
    out = capsys.readouterr().out
    assert "81,744 parameters" in out
    assert "output:  (1, 32, 32, 4)" in out
