"""keras_pansharp.layers: building blocks of the pan-sharpening models."""

from keras_pansharp.layers.interp23tap import BicubicUpsample, Interp23Tap
from keras_pansharp.layers.transformer import (
    ChannelAttention,
    ChannelLayerNorm,
    GatedDepthwiseFFN,
    TransformerBlock,
)
