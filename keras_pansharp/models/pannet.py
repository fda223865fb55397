"""PanNet (Yang et al., 2017), as in the PanCollection reference implementation."""

from __future__ import annotations

import keras

from keras_pansharp.layers.highpass import HighPass
from keras_pansharp.models.base import PansharpModel, UpsampledMS, pansharp_inputs
from keras_pansharp.models.baseline_utils import check_bands, conv, torch_default_init
from keras_pansharp.models.fusionnet import residual_block


@keras.saving.register_keras_serializable(package="keras_pansharp")
class PanNet(PansharpModel):
    """PanNet of Yang, Fu, Hu, Huang, Ding and Paisley (2017).

    "PanNet: A Deep Network Architecture for Pan-Sharpening", ICCV 2017.
    The network sees only high-pass content: the low-resolution MS and the
    PAN minus their 5x5 box-filtered versions (`HighPass`, the reference's
    `get_edge`, computed inside the model). The MS high-pass is upsampled by
    a learned transposed convolution (8x8, stride 4, `C` -> `C`, bias; the
    PyTorch `ConvTranspose2d(k=8, s=4, p=2)` is Keras' `"same"` padding),
    concatenated with the PAN high-pass, then a 3x3 convolution to 32
    channels with ReLU, 4 residual blocks (two 3x3 convolutions of 32
    channels), a 3x3 convolution to `C`, and the result is added to LMS
    (spectral preservation). Exactly the PanCollection `PanNet`, including
    its variance-scaling (He normal) initialisation of the convolutions.

    Parameters: 83,024 for 8 bands, 77,640 for 4 bands.

    Args:
        bands: number of MS bands `C` (default 4, like `PanTiny`).
        filters: channels of the body (32 in PanCollection).
        num_blocks: residual blocks (4 in PanCollection).
        highpass_size: box size of the high-pass filter (5 in PanCollection).
        upsampler: how `"ms"` is upsampled to LMS when no `"lms"` is given:
            `"interp23tap"` (default) or `"bicubic"`.
        **kwargs: `keras.Model` arguments (`name`, `trainable`, ...).

    Call args:
        inputs: dict `{"ms": (B, h, w, C), "pan": (B, 4h, 4w, 1),
            optional "lms": (B, 4h, 4w, C)}`, float, normalised to [0, 1].
            `h` and `w` must exceed `highpass_size // 2`.

    Returns:
        `(B, 4h, 4w, C)` fused image.

    Example:
    >>> PanNet(bands=8).count_params()
    83024
    """

    def __init__(
        self,
        bands: int = 4,
        filters: int = 32,
        num_blocks: int = 4,
        highpass_size: int = 5,
        upsampler: str = "interp23tap",
        **kwargs,
    ):
        check_bands(type(self).__name__, bands)
        inputs = pansharp_inputs(bands)
        lms = UpsampledMS(upsampler, name="upsampled_ms")(inputs["ms"], inputs["lms"])
        ms_hp = HighPass(highpass_size, name="ms_highpass")(inputs["ms"])
        pan_hp = HighPass(highpass_size, name="pan_highpass")(inputs["pan"])
        up = keras.layers.Conv2DTranspose(
            bands,
            8,
            strides=4,
            padding="same",
            use_bias=True,
            kernel_initializer=torch_default_init(),
            name="deconv",
        )(ms_hp)
        x = keras.layers.Concatenate(axis=-1, name="hp_concat")([up, pan_hp])
        x = conv(filters, 3, "conv1", activation="relu", init="he")(x)
        for i in range(num_blocks):
            x = residual_block(x, filters, f"res{i + 1}", init="he")
        x = conv(bands, 3, "conv3", init="he")(x)
        outputs = keras.layers.Add(name="add_lms")([lms, x])
        kwargs.setdefault("name", "pannet")
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.bands = bands
        self.filters = filters
        self.num_blocks = num_blocks
        self.highpass_size = highpass_size
        self.upsampler = upsampler

    def get_config(self):
        return {
            "bands": self.bands,
            "filters": self.filters,
            "num_blocks": self.num_blocks,
            "highpass_size": self.highpass_size,
            "upsampler": self.upsampler,
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
