"""PNN (Masi et al., 2016), as in the PanCollection reference implementation."""

from __future__ import annotations

import keras

from keras_pansharp.layers.replicate_padding import ReplicatePadding2D
from keras_pansharp.models.base import PansharpModel, UpsampledMS, pansharp_inputs
from keras_pansharp.models.baseline_utils import check_bands, conv

#: Pixels lost on each side by PNN's unpadded 9x9, 5x5, 5x5 convolutions.
PNN_BORDER = (9 - 1) // 2 + (5 - 1) // 2 + (5 - 1) // 2  # = 8


@keras.saving.register_keras_serializable(package="keras_pansharp")
class PNN(PansharpModel):
    """Pan-sharpening CNN (PNN) of Masi, Cozzolino, Verdoliva and Scarpa (2016).

    "Pansharpening by Convolutional Neural Networks", Remote Sensing 8(7), 594.
    Three convolutions on the concatenation `[LMS, PAN]` (`C + 1` channels):
    9x9 64 ReLU -> 5x5 32 ReLU -> 5x5 C, all with bias, all unpadded
    ("valid"), exactly the PanCollection `PNN`. No residual connection: the
    network predicts the fused image itself.

    The valid convolutions shrink the image by 8 pixels a side. As in the
    reference's inference path (`val_step`), the input is first padded by
    8 pixels with replicate ("edge") padding, so the output has the PAN's size
    in training and inference alike. (PanCollection trains on the shrunk
    output against a cropped GT; the interior pixels are computed identically.)

    Parameters: 104,360 for 8 bands, 80,420 for 4 bands.

    Args:
        bands: number of MS bands `C` (default 4, like `PanTiny`; 8 for
            WV2/WV3 8-band data).
        upsampler: how `"ms"` is upsampled when no `"lms"` is given:
            `"interp23tap"` (toolbox, default) or `"bicubic"`.
        **kwargs: `keras.Model` arguments (`name`, `trainable`, ...).

    Call args:
        inputs: dict `{"ms": (B, h, w, C), "pan": (B, 4h, 4w, 1),
            optional "lms": (B, 4h, 4w, C)}`, float, normalised to [0, 1].

    Returns:
        `(B, 4h, 4w, C)` fused image.

    Example:
    >>> import numpy as np
    >>> model = PNN(bands=8)
    >>> model.count_params()
    104360
    >>> x = {"ms": np.random.rand(1, 16, 16, 8).astype("float32"),
    ...      "pan": np.random.rand(1, 64, 64, 1).astype("float32")}
    >>> tuple(model(x).shape)
    (1, 64, 64, 8)
    """

    def __init__(self, bands: int = 4, upsampler: str = "interp23tap", **kwargs):
        check_bands(type(self).__name__, bands)
        inputs = pansharp_inputs(bands)
        lms = UpsampledMS(upsampler, name="upsampled_ms")(inputs["ms"], inputs["lms"])
        x = keras.layers.Concatenate(axis=-1, name="lms_pan")([lms, inputs["pan"]])
        x = ReplicatePadding2D(PNN_BORDER, name="replicate_pad")(x)
        x = conv(64, 9, "conv1", activation="relu", padding="valid")(x)
        x = conv(32, 5, "conv2", activation="relu", padding="valid")(x)
        outputs = conv(bands, 5, "conv3", padding="valid")(x)
        kwargs.setdefault("name", "pnn")
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
