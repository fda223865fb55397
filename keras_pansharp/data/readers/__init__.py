"""Readers for the pan-sharpening data formats users have (REFERENCE §3).

Three families of inputs are supported, all validated on open and on read:

* **PanCollection HDF5** files (`train_wv3.h5`, `test_gf2_multiExm1.h5`, ...):
  datasets `gt`, `ms`, `lms`, `pan`, channels-first `(N, C, H, W)`, values in
  digital numbers (DN). Full-resolution (FR) files have no `gt`. Read lazily,
  one sample (or one crop of one sample) at a time:
  `PanCollectionReader`.
* **Folder datasets** of the PanTiny paper's code (`<root>/train128/ms/*.tif`
  and `<root>/train128/pan/*.tif`, 4-band 8-bit images): `FolderReader`.
* **Scene files** holding one MS and one PAN image of a whole scene: GeoTIFF
  (via tifffile) and MATLAB `.mat` v5 (scipy) or v7.3 (h5py): `read_scene`.

Every reader returns samples as channels-last float32 arrays in DN:
`{"ms": (h, w, C), "pan": (4h, 4w, 1), "lms": (4h, 4w, C)[, "gt": (4h, 4w, C)]}`.
Bad input raises `DataFormatError` (a `ValueError`) naming the file, the key
and what was expected.

Modules: `validation` (`DataFormatError`, `RATIO`, checks), `base`
(`PairReader`), `pancollection`, `arrays`, `images` (`read_image`), `scenes`
(`Scene`, `read_scene`), `folders` (`FolderReader`), `sources` (`open_source`).
"""

from keras_pansharp.data.readers.arrays import ArrayReader
from keras_pansharp.data.readers.base import PairReader
from keras_pansharp.data.readers.folders import FolderReader
from keras_pansharp.data.readers.images import read_image
from keras_pansharp.data.readers.pancollection import PanCollectionReader
from keras_pansharp.data.readers.scenes import Scene, read_scene
from keras_pansharp.data.readers.sources import open_source
from keras_pansharp.data.readers.validation import RATIO, DataFormatError

__all__ = [
    "DataFormatError",
    "PairReader",
    "PanCollectionReader",
    "ArrayReader",
    "FolderReader",
    "Scene",
    "read_scene",
    "read_image",
    "open_source",
]
