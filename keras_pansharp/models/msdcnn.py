"""MSDCNN (Yuan et al., 2018), as in the PanCollection reference implementation."""

from __future__ import annotations

import keras

from keras_pansharp.models.base import PansharpModel, UpsampledMS, pansharp_inputs
from keras_pansharp.models.baseline_utils import check_bands, conv


def _multiscale_block(x, filters: int, name: str):
    """Parallel 3x3 / 5x5 / 7x7 convolutions (`filters` each), concatenated,
    plus the block input, then ReLU (the block input must have `3 * filters`
    channels)."""
    branches = [conv(filters, k, f"{name}_{k}x{k}")(x) for k in (3, 5, 7)]
    y = keras.layers.Concatenate(axis=-1, name=f"{name}_concat")(branches)
    y = keras.layers.Add(name=f"{name}_add")([y, x])
    return keras.layers.ReLU(name=f"{name}_relu")(y)


@keras.saving.register_keras_serializable(package="keras_pansharp")
class MSDCNN(PansharpModel):
    """Multiscale and multidepth CNN (MSDCNN) of Yuan, Wei, Meng, Shen and Zhang (2018).

    "A Multiscale and Multidepth Convolutional Neural Network for Remote
    Sensing Imagery Pan-Sharpening", IEEE JSTARS 11(3). Two branches on the
    concatenation `[LMS, PAN]` (`C + 1` channels), summed:

    - shallow: 9x9 64 ReLU -> 1x1 32 ReLU -> 5x5 `C`;
    - deep: 7x7 60 ReLU -> multiscale block (3x3, 5x5, 7x7 with 20 channels
      each, concatenated, + input, ReLU) -> 3x3 30 ReLU -> multiscale block
      (10 channels each, + input, ReLU) -> 5x5 `C`;

    followed by a final ReLU. No LMS residual: the network predicts the fused
    image itself. All convolutions have bias and same padding, exactly the
    PanCollection `MSDCNN`.

    Parameters: 228,556 for 8 bands, 189,852 for 4 bands.

    Args:
        bands: number of MS bands `C` (default 4, like `PanTiny`).
        upsampler: how `"ms"` is upsampled when no `"lms"` is given:
            `"interp23tap"` (default) or `"bicubic"`.
        **kwargs: `keras.Model` arguments (`name`, `trainable`, ...).

    Call args:
        inputs: dict `{"ms": (B, h, w, C), "pan": (B, 4h, 4w, 1),
            optional "lms": (B, 4h, 4w, C)}`, float, normalised to [0, 1].

    Returns:
        `(B, 4h, 4w, C)` fused image (non-negative, after the final ReLU).

    Example:
    >>> MSDCNN(bands=8).count_params()
    228556
    """

    def __init__(self, bands: int = 4, upsampler: str = "interp23tap", **kwargs):
        check_bands(type(self).__name__, bands)
        inputs = pansharp_inputs(bands)
        lms = UpsampledMS(upsampler, name="upsampled_ms")(inputs["ms"], inputs["lms"])
        x = keras.layers.Concatenate(axis=-1, name="lms_pan")([lms, inputs["pan"]])

        deep = conv(60, 7, "conv1", activation="relu")(x)
        deep = _multiscale_block(deep, 20, "ms1")
        deep = conv(30, 3, "conv3", activation="relu")(deep)
        deep = _multiscale_block(deep, 10, "ms2")
        deep = conv(bands, 5, "conv5")(deep)

        shallow = conv(64, 9, "shallow1", activation="relu")(x)
        shallow = conv(32, 1, "shallow2", activation="relu")(shallow)
        shallow = conv(bands, 5, "shallow3")(shallow)

        y = keras.layers.Add(name="deep_plus_shallow")([deep, shallow])
        outputs = keras.layers.ReLU(name="output_relu")(y)
        kwargs.setdefault("name", "msdcnn")
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.bands = bands
        self.upsampler = upsampler

    def get_config(self):
        return {
            "bands": self.bands,
            "upsampler": self.upsampler,
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
