"""The real full-resolution scenes of `../shared/data`, as `Scene`s.

Shared by `examples/pretrain.py` and `benchmarks/bench_generalization.py`
(not library API). Each entry: MS file, PAN file (None for a `.mat` holding
both), sensor and a group name (scenes of one sensor type, for
leave-one-sensor-out). The three 8-bit pairs are display-stretched
WorldView-2 / QuickBird 4-band crops of unknown exact sensor: they use an
8-bit generic sensor (max DN 255, toolbox default MTF gains).

`TRAINABLE` are the scenes whose sources publish a licence that allows
using them (`../shared/data/README.md`); the 8-bit pairs come without a
licence ("internal tests only"), and so do the GaoFen-2 samples ("research
use only"), so no shipped weights are trained on them: they are test scenes
only, never seen in training by any benchmark fold.
"""

from __future__ import annotations

from pathlib import Path

from keras_pansharp.data.readers import Scene, read_scene
from keras_pansharp.sensors import generic_sensor, get_sensor

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data"

EIGHT_BIT = generic_sensor(4, bit_depth=8, name="8BIT")

#: name -> (ms file, pan file or None, sensor, group)
SCENES = {
    "wv3_spacenet": ("wv3_spacenet_fr/ms.tif", "wv3_spacenet_fr/pan.tif", "wv3", "wv3"),
    "wv3_zpnn": ("wv3_zpnn_fr.mat", None, "wv3", "wv3"),
    "qb_abfnet": ("qb_abfnet/fr_ms.tif", "qb_abfnet/fr_pan.tif", "qb", "qb"),
    "pleiades_urban": (
        "pleiades_urban_fr/ms.tif",
        "pleiades_urban_fr/pan.tif",
        "pleiades",
        "pleiades",
    ),
    "spot6_cropland": (
        "spot6_cropland_fr/ms.tif",
        "spot6_cropland_fr/pan.tif",
        "spot6",
        "spot6",
    ),
    "dgif1_8bit": ("extra_8bit/dgif1/ms.tif", "extra_8bit/dgif1/pan.tif", None, "8bit"),
    "dgif5_8bit": ("extra_8bit/dgif5/ms.tif", "extra_8bit/dgif5/pan.tif", None, "8bit"),
    "mountain_8bit": (
        "extra_8bit/mountain_wv2/ms.tif",
        "extra_8bit/mountain_wv2/pan.tif",
        None,
        "8bit",
    ),
    # Real GaoFen-2 (10-bit) full-resolution samples, a sensor no training
    # scene has (their GeoTIFF geotransform is a dummy: it is not read).
    "gf2_test3": (
        "gf2_ucgan/test_fr/3_ms.tif",
        "gf2_ucgan/test_fr/3_pan.tif",
        "gf2",
        "gf2",
    ),
    "gf2_test4": (
        "gf2_ucgan/test_fr/4_ms.tif",
        "gf2_ucgan/test_fr/4_pan.tif",
        "gf2",
        "gf2",
    ),
}


#: Scenes that training may use (published licence); the others are test-only.
TRAINABLE = (
    "wv3_spacenet",
    "wv3_zpnn",
    "qb_abfnet",
    "pleiades_urban",
    "spot6_cropland",
)

#: Licence of each scene's source, for the model card.
LICENCES = {
    "wv3_spacenet": "SpaceNet AOI_4_Shanghai via sshuair/torchsat, CC BY-SA 4.0",
    "wv3_zpnn": "matciotola/Z-PNN example (GRIP-UNINA), non-commercial",
    "qb_abfnet": "hunchteller/ABFNet_Pansharpening",
    "pleiades_urban": "liqilei/Code-for-Pansharpening-Publised-in-CPE",
    "spot6_cropland": "liqilei/Code-for-Pansharpening-Publised-in-CPE",
    "dgif1_8bit": "jianlihua123/Pansharpening_DGIF, no licence: test only",
    "dgif5_8bit": "jianlihua123/Pansharpening_DGIF, no licence: test only",
    "mountain_8bit": "liqilei/Code-for-Pansharpening-Publised-in-CPE, no licence: test only",
    "gf2_test3": "zhysora/UCGAN GF-2 samples, no licence (research use): test only",
    "gf2_test4": "zhysora/UCGAN GF-2 samples, no licence (research use): test only",
}


def load_scenes(root: str | Path = DEFAULT_ROOT, names=None) -> dict[str, Scene]:
    """Read the scenes (all, or those in `names`) from `root`.

    Raises:
        FileNotFoundError: if `root` does not exist.
        ValueError: for an unknown scene name.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"shared data folder {root} does not exist")
    names = list(SCENES) if names is None else list(names)
    unknown = sorted(set(names) - set(SCENES))
    if unknown:
        raise ValueError(f"unknown scenes {unknown}; known: {list(SCENES)}")
    out = {}
    for name in names:
        ms_file, pan_file, sensor, _ = SCENES[name]
        sensor = EIGHT_BIT if sensor is None else get_sensor(sensor)
        pan = None if pan_file is None else root / pan_file
        out[name] = read_scene(root / ms_file, pan, sensor=sensor)
    return out


def groups() -> dict[str, list[str]]:
    """`{group: [scene names]}` for leave-one-sensor-out."""
    out: dict[str, list[str]] = {}
    for name, (*_, group) in SCENES.items():
        out.setdefault(group, []).append(name)
    return out
