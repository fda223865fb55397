"""keras_pansharp.layers: building blocks of the pan-sharpening models."""

from keras_pansharp.layers.bicubic_downsample import BicubicDownsample
from keras_pansharp.layers.detail_calibration import DetailCalibration
from keras_pansharp.layers.frequency import (
    FourierAmplitudePhase,
    InverseFourierAmplitudePhase,
)
from keras_pansharp.layers.highpass import HighPass
from keras_pansharp.layers.interp23tap import BicubicUpsample, Interp23Tap
from keras_pansharp.layers.invertible import (
    ConditionalAffineCoupling,
    ConditionalInvBlockExp,
    DenseSubnet,
    HaarDownsampling,
    HinCABlock,
    LatentPad,
    MeanLatent,
)
from keras_pansharp.layers.mamba import Mamba
from keras_pansharp.layers.panmamba_blocks import (
    HalfChannelSwap,
    HinResBlock,
    PatchEmbed,
)
from keras_pansharp.layers.replicate_padding import ReplicatePadding2D
from keras_pansharp.layers.sfdi_blocks import (
    AmplitudePhaseFusion,
    InvertibleConv1x1,
    InvertibleCouplingBlock,
    ResidualDenseSubnet,
    SpatialFrequencyBlock,
)
from keras_pansharp.layers.transformer import (
    ChannelAttention,
    ChannelLayerNorm,
    GatedDepthwiseFFN,
    TransformerBlock,
)
