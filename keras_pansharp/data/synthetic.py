"""Built-in synthetic multi-sensor data (no download).

Deterministic WV2-, WV3- and GF2-like acquisitions of landscapes with real
scene structure, and PanCollection-format train/valid/test files built from
them with Wald's protocol, cached on disk.

How a scene is made (`make_scene`):

1. A land-cover map at PAN resolution: Voronoi field parcels (lush crops,
   ripe crops, bare soil, grassland, forest) with tracks along their borders,
   a meandering river and sometimes a lake, straight roads, and an urban
   district with a street grid, buildings with concrete / red-tile / metal
   roofs and their shadows, and scattered tree crowns.
2. Each class has an 8-band reflectance spectrum (coastal ... NIR2: water
   dark and falling, vegetation with the green bump and red edge, soil
   rising, roofs flat or red); textures modulate it: crop rows, scikit-image's
   bundled `grass`/`gravel`/`brick` photographs, canopy noise, turbidity,
   per-parcel vigour. 4-band sensors keep blue, green, red and NIR.
3. The sensor: reflectance plus haze is scaled to DN (`max_value`: 2047 for
   WV2/WV3, 1023 for GF2). The MS is the scene filtered by the sensor's
   MTF-matched kernels and decimated by 4 (`mtf_filter`); the PAN is a
   weighted sum of the bands blurred by a Gaussian whose MTF at Nyquist is
   the sensor's PAN gain. Both get signal-dependent noise and are quantised.

`ensure_datasets` then writes, per sensor, `train.h5`, `valid.h5` (RR
patches), `test_rr.h5` (RR images) and `test_fr.h5` (full-resolution images)
under `$KERAS_PANSHARP_HOME/synthetic/` (default
`~/.keras/keras_pansharp/synthetic/`). Files are built once, atomically (safe
if two processes build at once) and reused.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import zlib
from pathlib import Path

import numpy as np
from scipy import ndimage

from keras_pansharp.data.patches import patch_grid, wald_scene, write_pancollection
from keras_pansharp.data.readers import RATIO, Scene
from keras_pansharp.sensors import Sensor, get_sensor

__all__ = [
    "CLASSES",
    "SPECTRA",
    "DEFAULTS",
    "default_home",
    "land_cover",
    "make_scene",
    "ensure_datasets",
]

VERSION = 1

# Land-cover classes and their 8-band reflectance (coastal, blue, green,
# yellow, red, red-edge, NIR1, NIR2).
CLASSES = (
    "water",
    "forest",
    "grass",
    "crop_lush",
    "crop_ripe",
    "soil",
    "asphalt",
    "concrete",
    "roof_red",
    "roof_metal",
)
SPECTRA = np.array(
    [
        [0.080, 0.070, 0.060, 0.045, 0.030, 0.020, 0.012, 0.010],  # water
        [0.030, 0.030, 0.060, 0.050, 0.030, 0.150, 0.330, 0.310],  # forest
        [0.040, 0.045, 0.095, 0.085, 0.055, 0.220, 0.400, 0.380],  # grass
        [0.035, 0.040, 0.110, 0.085, 0.040, 0.260, 0.500, 0.480],  # crop_lush
        [0.060, 0.075, 0.125, 0.150, 0.170, 0.220, 0.290, 0.300],  # crop_ripe
        [0.080, 0.100, 0.140, 0.170, 0.200, 0.230, 0.260, 0.280],  # soil
        [0.060, 0.070, 0.080, 0.082, 0.088, 0.092, 0.100, 0.102],  # asphalt
        [0.200, 0.240, 0.270, 0.280, 0.290, 0.300, 0.310, 0.310],  # concrete
        [0.060, 0.070, 0.090, 0.140, 0.260, 0.290, 0.310, 0.320],  # roof_red
        [0.300, 0.320, 0.330, 0.330, 0.330, 0.320, 0.310, 0.300],  # roof_metal
    ],
    dtype=np.float32,
)
_HAZE = np.array([0.05, 0.04, 0.025, 0.02, 0.015, 0.01, 0.006, 0.005], np.float32)
_SHADOW = np.array([0.50, 0.45, 0.40, 0.36, 0.33, 0.32, 0.30, 0.30], np.float32)
# Relative PAN spectral response over the 8 bands (450-800 nm, little coastal/NIR2).
_PAN_RESPONSE_8 = np.array([0.02, 0.13, 0.17, 0.14, 0.17, 0.14, 0.16, 0.07])
_PAN_RESPONSE_4 = np.array([0.22, 0.26, 0.26, 0.26])
_GAIN = 1.3  # DN per unit (reflectance + haze), as a fraction of max_value

_W, _FOREST, _GRASS, _LUSH, _RIPE, _SOIL, _ASPH, _CONC, _RED, _METAL = range(10)

DEFAULTS = {
    "train_scenes": 1,
    "train_scene_size": 1024,
    "train_patch": 64,
    "train_stride": 16,
    "valid_scene_size": 512,
    "valid_patch": 64,
    "valid_stride": 32,
    "test_size": 128,
    "test_images": 4,
}


def default_home() -> Path:
    """Cache root: `$KERAS_PANSHARP_HOME` or `~/.keras/keras_pansharp`."""
    env = os.environ.get("KERAS_PANSHARP_HOME")
    if env:
        return Path(env).expanduser()
    return Path(os.path.expanduser("~")) / ".keras" / "keras_pansharp"


# ----------------------------------------------------------------------------
# scene structure
# ----------------------------------------------------------------------------


def _smooth(rng, size: int, scale: float) -> np.ndarray:
    """Unit-variance smooth noise with correlation length ~`scale` pixels."""
    f = max(1, int(scale // 2))
    n = max(4, -(-size // f) + 2)
    g = ndimage.gaussian_filter(
        rng.standard_normal((n, n)).astype(np.float32), scale / f / 2, mode="wrap"
    )
    if f > 1:
        g = ndimage.zoom(g, f, order=1)
    g = g[:size, :size]
    return (g - g.mean()) / (g.std() + 1e-6)


def _photo_texture(rng, size: int, name: str) -> np.ndarray:
    """A zero-mean unit-variance texture tiled from a bundled skimage image."""
    import skimage.data

    img = getattr(skimage.data, name)().astype(np.float32)
    img = (img - img.mean()) / (img.std() + 1e-6)
    if rng.random() < 0.5:
        img = img.T
    r0, c0 = rng.integers(0, img.shape[0]), rng.integers(0, img.shape[1])
    rows = (np.arange(size) + r0) % img.shape[0]
    cols = (np.arange(size) + c0) % img.shape[1]
    return img[np.ix_(rows, cols)]


def land_cover(size: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Deterministic land-cover map and texture fields at PAN resolution.

    Args:
        size: side of the (square) map in PAN pixels.
        seed: random seed.

    Returns:
        Dict with `"classes"` `(size, size)` uint8 indices into `CLASSES`,
        `"shadow"` bool, `"parcel"` int32 parcel ids, and `"texture"`
        float32 (zero-mean multiplicative texture).
    """
    from scipy.spatial import cKDTree

    rng = np.random.default_rng([seed, 101])
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)

    # 1. Field parcels: Voronoi cells of a jittered grid, computed at half
    # resolution (straight field borders, cheap).
    cell = max(24.0, size / rng.uniform(5.0, 8.0))
    g = np.arange(cell / 2, size, cell)
    sy, sx = np.meshgrid(g, g, indexing="ij")
    seeds = np.stack([sy.ravel(), sx.ravel()], 1)
    seeds += rng.uniform(-0.4, 0.4, seeds.shape) * cell
    half = np.arange(0, size, 2, dtype=np.float32) + 0.5
    hy, hx = np.meshgrid(half, half, indexing="ij")
    _, idx = cKDTree(seeds).query(np.stack([hy.ravel(), hx.ravel()], 1))
    parcel = np.repeat(np.repeat(idx.reshape(hy.shape), 2, 0), 2, 1)[:size, :size]
    parcel = parcel.astype(np.int32)
    n_parcels = len(seeds)
    parcel_class = rng.choice(
        [_LUSH, _RIPE, _SOIL, _GRASS, _FOREST], n_parcels, p=[0.3, 0.2, 0.15, 0.2, 0.15]
    )
    cls = parcel_class[parcel].astype(np.uint8)

    texture = np.zeros((size, size), np.float32)
    # crop rows: per-parcel orientation and period
    theta = rng.uniform(0, np.pi, n_parcels)
    period = rng.uniform(3.0, 7.0, n_parcels)
    phase = (np.cos(theta)[parcel] * xx + np.sin(theta)[parcel] * yy) / period[parcel]
    rows = np.sin(2 * np.pi * phase).astype(np.float32)
    crops = (cls == _LUSH) | (cls == _RIPE)
    texture[crops] = 0.12 * rows[crops]
    vigour = rng.uniform(-0.12, 0.12, n_parcels).astype(np.float32)[parcel]
    texture += vigour + 0.06 * _smooth(rng, size, 24)
    grass_tex = _photo_texture(rng, size, "grass")
    gravel_tex = _photo_texture(rng, size, "gravel")
    canopy = _smooth(rng, size, 2.5)
    m = cls == _GRASS
    texture[m] += 0.10 * grass_tex[m]
    m = cls == _SOIL
    texture[m] += 0.08 * gravel_tex[m]
    m = cls == _FOREST
    texture[m] += 0.25 * canopy[m]

    # tracks along parcel borders
    border = (parcel != np.roll(parcel, 1, 0)) | (parcel != np.roll(parcel, 1, 1))
    border = ndimage.binary_dilation(border, iterations=1) & (rng.random() < 0.8)
    cls[border] = np.where(_smooth(rng, size, 40)[border] > 0, _SOIL, _GRASS)

    # 2. Water: a meandering river and sometimes a lake.
    width = rng.uniform(0.012, 0.03) * size + 2
    amp = rng.uniform(0.05, 0.15) * size
    lam = rng.uniform(0.5, 1.2) * size
    y0 = rng.uniform(0.2, 0.8) * size
    wobble = _smooth(rng, size, size / 6)[0] * 0.03 * size
    if rng.random() < 0.5:  # river along x or along y
        centre = (
            y0 + amp * np.sin(2 * np.pi * xx[0] / lam + rng.uniform(0, 6.3)) + wobble
        )
        dist = np.abs(yy - centre[None, :])
    else:
        centre = (
            y0 + amp * np.sin(2 * np.pi * yy[:, 0] / lam + rng.uniform(0, 6.3)) + wobble
        )
        dist = np.abs(xx - centre[:, None])
    water = dist < width / 2
    if rng.random() < 0.5:
        lake = _smooth(rng, size, size / 8)
        water |= lake > np.quantile(lake, 0.96)
    # river banks with trees
    bank = (dist < width / 2 + 3) & ~water
    cls[bank] = _FOREST
    texture[bank] = 0.25 * canopy[bank]
    cls[water] = _W
    texture[water] = 0.15 * _smooth(rng, size, 30)[water]

    # 3. Roads: straight lines across the scene (bridges over water).
    for _ in range(int(rng.integers(1, 4))):
        a = rng.uniform(0, np.pi)
        c = rng.uniform(0.1, 0.9) * size
        d = np.abs(
            np.cos(a) * (xx - size / 2) + np.sin(a) * (yy - size / 2) - (c - size / 2)
        )
        road = d < rng.uniform(1.5, 3.0)
        cls[road] = _ASPH
        texture[road] = 0.03 * _smooth(rng, size, 2)[road]

    # 4. Urban district: street grid, buildings, roofs, shadows, lawns.
    shadow = np.zeros((size, size), bool)
    u = int(rng.uniform(0.35, 0.55) * size)
    ut, ul = (int(v) for v in rng.integers(0, size - u + 1, 2))
    block = int(rng.uniform(24, 40))
    street = int(rng.integers(3, 5))
    buildings = np.zeros((size, size), bool)
    brick = _photo_texture(rng, size, "brick")
    for r0 in range(ut, ut + u - block + 1, block):
        for c0 in range(ul, ul + u - block + 1, block):
            ground = _GRASS if rng.random() < 0.5 else _CONC
            cls[r0 : r0 + block, c0 : c0 + block] = ground
            texture[r0 : r0 + block, c0 : c0 + block] = (
                0.05 * grass_tex[r0 : r0 + block, c0 : c0 + block]
            )
            cls[r0 : r0 + street, c0 : c0 + block] = _ASPH
            cls[r0 : r0 + block, c0 : c0 + street] = _ASPH
            inner = block - street
            n_lots = int(rng.integers(1, 4))
            lot = inner // n_lots
            for i in range(n_lots):
                for j in range(n_lots):
                    if rng.random() < 0.15:
                        continue
                    m1, m2 = (int(v) for v in rng.integers(1, max(2, lot // 4), 2))
                    h = lot - m1 - int(rng.integers(1, max(2, lot // 4)))
                    w = lot - m2 - int(rng.integers(1, max(2, lot // 4)))
                    if h < 3 or w < 3:
                        continue
                    br = r0 + street + i * lot + m1
                    bc = c0 + street + j * lot + m2
                    roof = rng.choice([_CONC, _RED, _METAL], p=[0.45, 0.35, 0.2])
                    cls[br : br + h, bc : bc + w] = roof
                    buildings[br : br + h, bc : bc + w] = True
                    tex = 0.04 * brick[br : br + h, bc : bc + w]
                    if roof == _RED:  # gabled roof: two slopes lit differently
                        tex = tex + np.where(
                            np.arange(h)[:, None] < h // 2, 0.08, -0.08
                        ).astype(np.float32)
                    texture[br : br + h, bc : bc + w] = tex
    sh = int(rng.integers(2, 4))
    shifted = np.zeros_like(buildings)
    shifted[sh:, sh:] = buildings[:-sh, :-sh]
    shadow = shifted & ~buildings

    # 5. Scattered tree crowns outside water and buildings.
    n_trees = int(size * size / 900)
    ty = rng.integers(0, size, n_trees)
    tx = rng.integers(0, size, n_trees)
    crowns = np.zeros((size, size), bool)
    crowns[ty, tx] = True
    crowns = ndimage.binary_dilation(crowns, iterations=int(rng.integers(2, 4)))
    crowns &= (cls == _GRASS) | (cls == _SOIL)
    cls[crowns] = _FOREST
    texture[crowns] = 0.25 * canopy[crowns]
    return {"classes": cls, "shadow": shadow, "parcel": parcel, "texture": texture}


def _reflectance(cover: dict, rng=None) -> np.ndarray:
    """8-band reflectance (size, size, 8), float32."""
    cls, tex, shadow = cover["classes"], cover["texture"], cover["shadow"]
    refl = SPECTRA[cls]  # (H, W, 8)
    # spectral variability: vegetation vigour moves NIR and red in opposite
    # directions; other textures are brightness-like.
    veg = np.isin(cls, (_FOREST, _GRASS, _LUSH)).astype(np.float32)
    band_gain = np.array([1, 1, 1, 1, 1, 1.2, 1.4, 1.4], np.float32)
    red_drop = np.array([0, 0, 0.3, 0.5, 1.0, 0.3, 0, 0], np.float32)
    t = tex[..., None]
    refl = refl * (1 + t * (band_gain - veg[..., None] * red_drop * 2.0))
    refl = np.where(shadow[..., None], refl * _SHADOW, refl)
    return np.clip(refl, 0.002, None).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _scene_reflectance(size: int, seed: int) -> np.ndarray:
    """Cached 8-band reflectance of landscape `(size, seed)` (shared by sensors)."""
    refl = _reflectance(land_cover(size, seed), None)
    refl.setflags(write=False)
    return refl


def _mtf_decimate(truth: np.ndarray, sensor: Sensor) -> np.ndarray:
    """MTF-matched filtering (sensor's toolbox kernels) then 4x decimation.

    FFT correlation in float32 with replicated borders; keeps rows/columns
    2, 6, 10, ... as the toolbox's `imresize(..., 'nearest')`.
    """
    import scipy.fft

    from keras_pansharp.signal import mtf_kernels

    k = mtf_kernels(sensor, RATIO, num_bands=truth.shape[2]).astype(np.float32)
    p = k.shape[0] // 2
    x = np.pad(truth, ((p, p), (p, p), (0, 0)), mode="edge")
    shape = (
        scipy.fft.next_fast_len(x.shape[0], real=True),
        scipy.fft.next_fast_len(x.shape[1], real=True),
    )
    fx = scipy.fft.rfft2(x, s=shape, axes=(0, 1), workers=-1)
    fk = scipy.fft.rfft2(k, s=shape, axes=(0, 1), workers=-1)
    y = scipy.fft.irfft2(fx * np.conj(fk), s=shape, axes=(0, 1), workers=-1)
    h, w = truth.shape[:2]
    return np.asarray(y[2:h:RATIO, 2:w:RATIO], np.float64)


def _pan_sigma(gain: float) -> float:
    """Gaussian PSF sigma (pixels) whose MTF at Nyquist equals `gain`."""
    return float(np.sqrt(-2.0 * np.log(gain)) / np.pi)


def make_scene(
    sensor: str | Sensor,
    size: int = 512,
    seed: int = 0,
    noise: bool = True,
    return_truth: bool = False,
):
    """A deterministic synthetic full-resolution MS + PAN acquisition.

    Args:
        sensor: `"wv2"`, `"wv3"`, `"gf2"` or any registered sensor with 4 or
            8 bands.
        size: PAN side in pixels (multiple of 4); the MS is `size/4`.
        seed: random seed (the same seed gives the same landscape for every
            sensor, seen through each sensor's bands, MTFs and noise).
        noise: add signal-dependent sensor noise (default `True`).
        return_truth: also return the noise-free, unblurred scene at PAN
            resolution `(size, size, C)` in DN.

    Returns:
        A `Scene` with `ms` `(size/4, size/4, C)` and `pan` `(size, size)`,
        float64 integer-valued DN in `[0, sensor.max_value]` (and the truth if
        `return_truth`).

    Example:

    >>> scene = make_scene("gf2", size=128, seed=0)
    >>> scene.ms.shape, scene.pan.shape, scene.sensor.max_value
    ((32, 32, 4), (128, 128), 1023.0)
    """
    sensor = get_sensor(sensor)
    size = int(size)
    if size <= 0 or size % RATIO:
        raise ValueError(f"size must be a positive multiple of {RATIO}, got {size}.")
    if sensor.num_bands not in (4, 8):
        raise ValueError(
            f"Synthetic data supports 4- and 8-band sensors, {sensor.name} has "
            f"{sensor.num_bands}."
        )
    rng = np.random.default_rng([seed, zlib.crc32(sensor.name.encode()), 7])
    refl8 = _scene_reflectance(size, seed)
    scale = np.float32(_GAIN * sensor.max_value)
    if sensor.num_bands == 8:
        truth = (refl8 + _HAZE) * scale
        pan_w = _PAN_RESPONSE_8
    else:
        idx = [1, 2, 4, 6]  # blue, green, red, NIR1 of the 8-band library
        truth = (refl8[..., idx] + _HAZE[idx]) * scale
        pan_w = _PAN_RESPONSE_4
    pan_w = (pan_w / pan_w.sum()).astype(np.float32)
    pan = ndimage.gaussian_filter(
        truth @ pan_w, _pan_sigma(sensor.pan_gnyq), mode="reflect"
    )
    ms = _mtf_decimate(truth, sensor)

    def acquire(x):
        x = np.asarray(x, np.float64)
        if noise:
            sigma = np.sqrt((1e-3 * sensor.max_value) ** 2 + 0.05 * np.clip(x, 0, None))
            x = x + sigma * rng.standard_normal(x.shape)
        return np.clip(np.round(x), 0, sensor.max_value)

    scene = Scene(
        ms=acquire(ms),
        pan=acquire(pan),
        sensor=sensor,
        source=f"<synthetic {sensor.name} size={size} seed={seed}>",
    )
    if return_truth:
        return scene, truth
    return scene


# ----------------------------------------------------------------------------
# cached PanCollection files
# ----------------------------------------------------------------------------


@contextlib.contextmanager
def _build_lock(folder: Path):
    """Serialise builders of one folder (POSIX); no-op where flock is missing."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: atomic writes suffice
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _rr_patches(scenes, patch, stride):
    parts = {"gt": [], "ms": [], "pan": [], "lms": []}
    for scene in scenes:
        full = wald_scene(scene.ms, scene.pan, scene.sensor)
        corners = patch_grid(*full["gt"].shape[:2], patch, stride)
        q = patch // RATIO
        for r, c in corners:
            parts["gt"].append(full["gt"][r : r + patch, c : c + patch])
            parts["pan"].append(full["pan"][r : r + patch, c : c + patch])
            parts["lms"].append(full["lms"][r : r + patch, c : c + patch])
            parts["ms"].append(
                full["ms"][r // RATIO : r // RATIO + q, c // RATIO : c // RATIO + q]
            )
    return {k: np.stack(v) for k, v in parts.items()}


def _fr_crops(scene, size, count):
    from keras_pansharp.signal import interp23tap

    lms = interp23tap(scene.ms)
    grid = patch_grid(*scene.pan.shape, size, size)
    pick = np.linspace(0, len(grid) - 1, count).round().astype(int)
    corners = [grid[i] for i in pick]
    q = size // RATIO
    return {
        "ms": np.stack(
            [
                scene.ms[r // RATIO : r // RATIO + q, c // RATIO : c // RATIO + q]
                for r, c in corners
            ]
        ),
        "pan": np.stack([scene.pan[r : r + size, c : c + size] for r, c in corners]),
        "lms": np.stack([lms[r : r + size, c : c + size] for r, c in corners]),
    }


def _grid_side(count: int) -> int:
    return int(np.ceil(np.sqrt(count)))


def ensure_datasets(
    sensors=("wv2", "wv3", "gf2"),
    root: str | os.PathLike | None = None,
    seed: int = 0,
    **sizes,
) -> dict[str, dict[str, Path]]:
    """Build (once) and return the synthetic PanCollection-format files.

    For every sensor: `train.h5` and `valid.h5` (reduced-resolution patches,
    `gt`/`ms`/`lms`/`pan`), `test_rr.h5` (RR images of `test_size` PAN
    pixels) and `test_fr.h5` (full-resolution images, PAN `test_size`, no
    `gt`), each from its own synthetic scenes (no overlap between splits).
    Files live in `<root>/synthetic/v<version>-<hash of the settings>/<sensor>/`
    with `root` defaulting to `$KERAS_PANSHARP_HOME` or
    `~/.keras/keras_pansharp`. Existing files are reused; new files are
    written atomically, and concurrent builders are serialised by a file lock.

    Args:
        sensors: sensor names (4- or 8-band registered sensors).
        root: cache root (see above).
        seed: base seed; every split and sensor derives its own.
        **sizes: overrides of `DEFAULTS`: `train_scenes` (number of training
            scenes), `train_scene_size` (their PAN side), `train_patch`,
            `train_stride` (RR patch size and grid step, GT pixels),
            `valid_scene_size`, `valid_patch`, `valid_stride`, `test_size`,
            `test_images`.

    Returns:
        `{split: {sensor: Path}}` for splits `"train"`, `"valid"`,
        `"test_rr"`, `"test_fr"`, e.g. `paths["train"]` can be given directly
        to `MultiSensorDataset`.

    Example:

    ```python
    paths = keras_pansharp.data.synthetic.ensure_datasets()
    ds = keras_pansharp.MultiSensorDataset(paths["train"], batch_size=8,
                                           patch_size=64)
    ```
    """
    unknown = set(sizes) - set(DEFAULTS)
    if unknown:
        raise TypeError(
            f"Unknown settings {sorted(unknown)}; known: {sorted(DEFAULTS)}."
        )
    cfg = dict(DEFAULTS, **sizes)
    for k, v in cfg.items():
        if int(v) != v or v <= 0:
            raise ValueError(f"{k} must be a positive integer, got {v}.")
    for k in (
        "train_scene_size",
        "valid_scene_size",
        "train_patch",
        "valid_patch",
        "train_stride",
        "valid_stride",
        "test_size",
    ):
        if cfg[k] % RATIO:
            raise ValueError(f"{k} must be a multiple of {RATIO}, got {cfg[k]}.")
    for split in ("train", "valid"):
        ms_side = cfg[f"{split}_scene_size"] // RATIO
        if cfg[f"{split}_patch"] > ms_side:
            raise ValueError(
                f"{split}_patch {cfg[f'{split}_patch']} exceeds the MS side {ms_side} "
                f"of a {cfg[f'{split}_scene_size']}-pixel scene."
            )
    if isinstance(sensors, str):
        sensors = (sensors,)
    key = json.dumps({"v": VERSION, "seed": seed, **cfg}, sort_keys=True)
    tag = f"v{VERSION}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"
    base = (
        (Path(root).expanduser() if root is not None else default_home())
        / "synthetic"
        / tag
    )
    out: dict[str, dict[str, Path]] = {
        s: {} for s in ("train", "valid", "test_rr", "test_fr")
    }
    for name in sensors:
        sensor = get_sensor(name)
        folder = base / sensor.name.lower()
        files = {split: folder / f"{split}.h5" for split in out}
        for split, p in files.items():
            out[split][name] = p
        if all(p.is_file() for p in files.values()):
            continue
        with _build_lock(folder):
            _build_sensor(sensor, files, seed, cfg)
    _scene_reflectance.cache_clear()
    return out


def _build_sensor(sensor: Sensor, files: dict, seed: int, cfg: dict) -> None:
    tsize = cfg["test_size"]
    n_test = cfg["test_images"]
    side = _grid_side(n_test)
    attrs = {"synthetic_version": VERSION, "seed": seed}
    if not files["train"].is_file():
        scenes = [
            make_scene(sensor, cfg["train_scene_size"], seed=seed * 1000 + 11 + i)
            for i in range(cfg["train_scenes"])
        ]
        arrays = _rr_patches(scenes, cfg["train_patch"], cfg["train_stride"])
        write_pancollection(files["train"], arrays, sensor, overwrite=True, attrs=attrs)
    if not files["valid"].is_file():
        scene = make_scene(sensor, cfg["valid_scene_size"], seed=seed * 1000 + 500)
        arrays = _rr_patches([scene], cfg["valid_patch"], cfg["valid_stride"])
        write_pancollection(files["valid"], arrays, sensor, overwrite=True, attrs=attrs)
    if not (files["test_rr"].is_file() and files["test_fr"].is_file()):
        # One test scene, as in PanCollection: the RR test images are its Wald-
        # degraded version (GT = its MS, cut into side x side images of tsize),
        # the FR images are crops of its native PAN (tsize) and MS (tsize / 4).
        scene = make_scene(sensor, RATIO * side * tsize, seed=seed * 1000 + 600)
        if not files["test_rr"].is_file():
            arrays = _rr_patches([scene], tsize, tsize)
            arrays = {k: v[:n_test] for k, v in arrays.items()}
            write_pancollection(
                files["test_rr"], arrays, sensor, overwrite=True, attrs=attrs
            )
        if not files["test_fr"].is_file():
            arrays = _fr_crops(scene, tsize, n_test)
            write_pancollection(
                files["test_fr"], arrays, sensor, overwrite=True, attrs=attrs
            )
