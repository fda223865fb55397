"""keras_pansharp: deep pan-sharpening for Keras 3 (TensorFlow, JAX, PyTorch).

Public API is re-exported here. Each subpackage owns its section below.
"""

from keras_pansharp import sensors
from keras_pansharp.sensors import Sensor, generic_sensor, get_sensor
from keras_pansharp.version import __version__

# --- layers (keras_pansharp.layers) ---
# isort: split
from keras_pansharp import layers
from keras_pansharp.layers import (
    BicubicUpsample,
    ChannelAttention,
    ChannelLayerNorm,
    DetailCalibration,
    GatedDepthwiseFFN,
    HighPass,
    Interp23Tap,
    ReplicatePadding2D,
    TransformerBlock,
)

# --- models (keras_pansharp.models) ---
# isort: split
from keras_pansharp import models
from keras_pansharp.models import (
    MSDCNN,
    PNN,
    PSCINN,
    SFDI,
    DiCNN,
    FusionNet,
    PanFlow,
    PanMamba,
    PanNet,
    PansharpModel,
    PanTiny,
    get_model,
)

# --- signal tools (keras_pansharp.signal) ---
# isort: split
from keras_pansharp import signal
from keras_pansharp.signal import (
    bt_h,
    exp_method,
    imresize_bicubic,
    interp23tap,
    mtf_filter,
    mtf_glp_hpm_r,
    mtf_kernels,
    wald_degrade,
)

# --- metrics (keras_pansharp.metrics) ---
# isort: split
from keras_pansharp import metrics
from keras_pansharp.metrics import (
    d_rho,
    evaluate_fr,
    evaluate_fr_windowed,
    evaluate_rr,
    evaluate_rr_windowed,
    reprojection,
)

# --- callbacks (keras_pansharp.callbacks) ---
# isort: split
from keras_pansharp import callbacks
from keras_pansharp.callbacks import FREvaluation, RREvaluation

# --- data (keras_pansharp.data) ---
# isort: split
from keras_pansharp import data
from keras_pansharp.data import FullResolutionDataset, MultiSensorDataset

# --- losses / recipes ---
# isort: split
from keras_pansharp import losses, recipes
from keras_pansharp.losses import L1Loss, NoReferenceLoss, PanSharpLoss, SSIMLoss

# --- export, tiled inference and whole scenes (export, inference, scene) ---
# isort: split
from keras_pansharp import export, inference, scene
from keras_pansharp.export import export_saved_model
from keras_pansharp.inference import predict_tiled
from keras_pansharp.scene import predict_scene

# --- disk-to-disk scene fusion (keras_pansharp.streaming) ---
# isort: split
from keras_pansharp import streaming
from keras_pansharp.streaming import FuseResult, fuse_geotiff

# --- target adaptation (keras_pansharp.adaptation) ---
# isort: split
from keras_pansharp import adaptation
from keras_pansharp.adaptation import AdaptResult, adapt

# --- detail-gain calibration (keras_pansharp.calibration) ---
# isort: split
from keras_pansharp import calibration
from keras_pansharp.calibration import (
    DetailGainResult,
    apply_detail_gain,
    calibrate_detail_gain,
)

# --- evaluation tables (keras_pansharp.evaluation) ---
# isort: split
from keras_pansharp import evaluation
from keras_pansharp.evaluation import EvaluationTable, evaluate

# --- utils (keras_pansharp.utils) ---
# isort: split
from keras_pansharp import utils
