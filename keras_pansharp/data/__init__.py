"""keras_pansharp.data: readers, `MultiSensorDataset`, patch maker, synthetic data.

- `PanCollectionReader`, `FolderReader`, `ArrayReader`, `read_scene`,
  `read_image`: validated readers of the formats users have.
- `MultiSensorDataset`: balanced multi-sensor batches for `model.fit`.
- `FullResolutionDataset`: no-reference crops of real scenes for
  full-resolution training with `NoReferenceLoss`.
- `make_training_set`: Wald's-protocol patch maker (CLI:
  `python -m keras_pansharp.data.prepare`).
- `GeoTiffReader`, `GeoTiffWriter`, `GeoInfo`, `check_alignment`,
  `describe`: windowed GeoTIFF I/O for scenes larger than memory
  (`keras_pansharp.fuse_geotiff` streams a scene disk to disk with them).
- `synthetic`: built-in WV2/WV3/GF2-like data (`synthetic.ensure_datasets()`).
"""

from keras_pansharp.data import synthetic
from keras_pansharp.data.full_resolution import (
    FullResolutionDataset,
    RadiometricAugmentation,
)
from keras_pansharp.data.geotiff import (
    GeoInfo,
    GeoTiffReader,
    GeoTiffWriter,
    check_alignment,
    describe,
)
from keras_pansharp.data.multi_sensor import MultiSensorDataset
from keras_pansharp.data.patches import (
    make_training_set,
    wald_scene,
    write_pancollection,
)
from keras_pansharp.data.readers import (
    ArrayReader,
    DataFormatError,
    FolderReader,
    PairReader,
    PanCollectionReader,
    Scene,
    open_source,
    read_image,
    read_scene,
)

__all__ = [
    "ArrayReader",
    "DataFormatError",
    "FolderReader",
    "GeoInfo",
    "GeoTiffReader",
    "GeoTiffWriter",
    "MultiSensorDataset",
    "FullResolutionDataset",
    "RadiometricAugmentation",
    "PairReader",
    "PanCollectionReader",
    "Scene",
    "check_alignment",
    "describe",
    "make_training_set",
    "open_source",
    "read_image",
    "read_scene",
    "synthetic",
    "wald_scene",
    "write_pancollection",
]
