"""DiCNN (He et al., 2019), as in the PanCollection reference implementation."""

from __future__ import annotations

import keras

from keras_pansharp.models.base import PansharpModel, UpsampledMS, pansharp_inputs
from keras_pansharp.models.baseline_utils import check_bands, conv


@keras.saving.register_keras_serializable(package="keras_pansharp")
class DiCNN(PansharpModel):
    """Detail-injection CNN (DiCNN1) of He, Rao, Chanussot et al. (2019).

    "Pansharpening via Detail Injection Based Convolutional Neural Networks",
    IEEE JSTARS 12(4). Three 3x3 convolutions (same padding, bias) on the
    concatenation `[LMS, PAN]`: `C + 1` -> 64 ReLU -> 64 ReLU -> `C`; the
    output is added to LMS (detail injection), exactly the PanCollection
    `DiCNN`. Weights use the reference's variance-scaling (He normal)
    initialisation.

    Parameters: 46,792 for 8 bands, 42,180 for 4 bands.

    Args:
        bands: number of MS bands `C` (default 4, like `PanTiny`).
        filters: channels of the two hidden convolutions (64 in the paper).
        upsampler: how `"ms"` is upsampled when no `"lms"` is given:
            `"interp23tap"` (default) or `"bicubic"`.
        **kwargs: `keras.Model` arguments (`name`, `trainable`, ...).

    Call args:
        inputs: dict `{"ms": (B, h, w, C), "pan": (B, 4h, 4w, 1),
            optional "lms": (B, 4h, 4w, C)}`, float, normalised to [0, 1].

    Returns:
        `(B, 4h, 4w, C)` fused image.

    Example:
    >>> DiCNN(bands=8).count_params()
    46792
    """

    def __init__(
        self,
        bands: int = 4,
        filters: int = 64,
        upsampler: str = "interp23tap",
        **kwargs,
    ):
        check_bands(type(self).__name__, bands)
        inputs = pansharp_inputs(bands)
        lms = UpsampledMS(upsampler, name="upsampled_ms")(inputs["ms"], inputs["lms"])
        x = keras.layers.Concatenate(axis=-1, name="lms_pan")([lms, inputs["pan"]])
        x = conv(filters, 3, "conv1", activation="relu", init="he")(x)
        x = conv(filters, 3, "conv2", activation="relu", init="he")(x)
        x = conv(bands, 3, "conv3", init="he")(x)
        outputs = keras.layers.Add(name="add_lms")([lms, x])
        kwargs.setdefault("name", "dicnn")
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.bands = bands
        self.filters = filters
        self.upsampler = upsampler

    def get_config(self):
        return {
            "bands": self.bands,
            "filters": self.filters,
            "upsampler": self.upsampler,
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
