"""FusionNet (Deng et al., 2021), as in the PanCollection reference implementation."""

from __future__ import annotations

import keras

from keras_pansharp.models.base import PansharpModel, UpsampledMS, pansharp_inputs
from keras_pansharp.models.baseline_utils import check_bands, conv


def residual_block(x, filters: int, name: str, init: str = "torch"):
    """`x + conv3x3(relu(conv3x3(x)))`, the PanCollection `Resblock`."""
    y = conv(filters, 3, f"{name}_conv1", activation="relu", init=init)(x)
    y = conv(filters, 3, f"{name}_conv2", init=init)(y)
    return keras.layers.Add(name=f"{name}_add")([x, y])


@keras.saving.register_keras_serializable(package="keras_pansharp")
class FusionNet(PansharpModel):
    """FusionNet of Deng, Vivone, Jin et al. (2021).

    "Detail Injection-Based Deep Convolutional Neural Networks for
    Pansharpening", IEEE TGRS 59(8). The input is the PAN replicated to `C`
    bands minus LMS (the details to inject); a 3x3 convolution to 32
    channels with ReLU, 4 residual blocks (two 3x3 convolutions of 32
    channels, ReLU between, identity skip), a 3x3 convolution to `C`, and the
    result is added to LMS. All convolutions have bias and same padding,
    exactly the PanCollection `FusionNet`.

    Parameters: 78,632 for 8 bands, 76,324 for 4 bands.

    Args:
        bands: number of MS bands `C` (default 4, like `PanTiny`).
        filters: channels of the body (32 in the paper).
        num_blocks: residual blocks (4 in the paper).
        upsampler: how `"ms"` is upsampled when no `"lms"` is given:
            `"interp23tap"` (default) or `"bicubic"`.
        **kwargs: `keras.Model` arguments (`name`, `trainable`, ...).

    Call args:
        inputs: dict `{"ms": (B, h, w, C), "pan": (B, 4h, 4w, 1),
            optional "lms": (B, 4h, 4w, C)}`, float, normalised to [0, 1].

    Returns:
        `(B, 4h, 4w, C)` fused image.

    Example:
    >>> FusionNet(bands=8).count_params()
    78632
    """

    def __init__(
        self,
        bands: int = 4,
        filters: int = 32,
        num_blocks: int = 4,
        upsampler: str = "interp23tap",
        **kwargs,
    ):
        check_bands(type(self).__name__, bands)
        inputs = pansharp_inputs(bands)
        lms = UpsampledMS(upsampler, name="upsampled_ms")(inputs["ms"], inputs["lms"])
        pan_rep = inputs["pan"]
        if bands > 1:
            pan_rep = keras.layers.Concatenate(axis=-1, name="pan_replicated")(
                [inputs["pan"]] * bands
            )
        x = keras.layers.Subtract(name="pan_minus_lms")([pan_rep, lms])
        x = conv(filters, 3, "conv1", activation="relu")(x)
        for i in range(num_blocks):
            x = residual_block(x, filters, f"res{i + 1}")
        x = conv(bands, 3, "conv3")(x)
        outputs = keras.layers.Add(name="add_lms")([lms, x])
        kwargs.setdefault("name", "fusionnet")
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.bands = bands
        self.filters = filters
        self.num_blocks = num_blocks
        self.upsampler = upsampler

    def get_config(self):
        return {
            "bands": self.bands,
            "filters": self.filters,
            "num_blocks": self.num_blocks,
            "upsampler": self.upsampler,
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
