"""Pan-sharpen whole scenes in bounded memory (tiling).

`predict_tiled(model, ms, pan)` runs a model, as it is, over a scene: it cuts the scene into PAN-scale tiles of at
most `tile x tile` pixels (MS tiles `tile/4`) and runs the model on batches
of tiles. Two schemes:

**Exact** (default for models with image-wide statistics, e.g. PanTiny, and
on request for any Keras model): the scene is partitioned into disjoint
*cores*; each tile is its core plus a halo of `halo` PAN pixels of context
(default: the model's receptive-field radius from its convolutions, rounded up
to a multiple of 4; PanTiny: 17 -> 20), shifted inwards at the scene border,
where the tile edge *is* the scene edge and zero padding matches the
whole-scene model. Local layers then give every core pixel exactly its
whole-scene value. PanTiny's channel attention is not local: it normalises
queries and keys over *all* pixels of the image, so `A = softmax(q k^T t /
(|q| |k|))` depends on three image-wide sums, `G = sum q k^T`, `sum q^2` and
`sum k^2` (a few `dim x dim` numbers per layer). With `L` such layers the
scene is processed in `L + 1` passes over the tiles. Tiles are as large as
`tile` allows but no larger than needed (`balanced_core_tiles`: a 1024-pixel
axis with `tile=512` takes 3 tiles of 368, not 3 of 512). For functional
models whose attention layers each sit in the graph once (PanTiny and its
presets), each pass is one compiled function (`tf.function`; `jax.jit`)
that continues the forward pass where the previous one stopped: pass `s`
reads the input `b` of block `s - 1` kept from pass `s - 1`, recomputes its
attention values `v`, finishes that block with its now fixed whole-scene
attention (`b + v A^T P`, `P` the output projection, then the FFN), runs on
to block `s`, and returns its input `b` and the statistics summed over the
tile's core (each pixel counted once); the last pass writes the cores. So
every activation is computed once (one LayerNorm per block twice), as in
one forward pass over the tiles; see `benchmarks/bench_exact_tiling.py` and
docs/performance.md for the time against untiled `model.predict`. The `b`
kept between passes (`dim` floats per tile pixel, 112 bytes for PanTiny)
stays in memory up to `cache_mb` (default 1024 MB) and goes to an anonymous
temporary file in `cache_dir` (default: the system's temporary folder; no
name on disk, removed when closed, also on errors) beyond it, so memory
stays bounded for any scene size; the disk needs about `112 * H * W` bytes
(plus the halo overhead) for an `H x W` PAN scene (e.g. ~8 GB at 8192^2).
Where the disk has no room, each pass recomputes the earlier segments
instead (exact, slower). Other models (subclassed, or an attention
layer shared between calls) run the same scheme eagerly, each pass from the
inputs with layer hooks (`ChannelAttention.global_stats_mode`): exact, but
about `(L + 1) / 2 + 1` full-model passes (62 s against 6.9 s untiled for
PanTiny at 1024^2 with TensorFlow). Statistics belong to the one scene being
fused (as in an untiled batch, where each image has its own).

**Blending** (`exact=False`, the default for purely convolutional models and
for non-Keras wrappers): neighbouring tiles share `overlap` pixels and are
blended: along each axis a tile's weight is 0 on the outer quarter of each
shared band (`overlap // 4` pixels next to an inner tile edge), then ramps
linearly to 1 across the middle half; weights of neighbouring tiles sum to 1
(renormalised exactly, the grid is separable), so no seams and no gain
change. Output equals untiled prediction (up to float rounding) for models
whose receptive-field radius is at most `overlap // 4` PAN pixels (all
convolutional baselines with the default `overlap`). One compiled pass
(`predict_on_batch`).

In both schemes the MS -> PAN-size upsampling (`lms`) of each tile is
computed from the MS tile plus a 12-pixel low-resolution halo taken from the
*whole scene* with the toolbox's circular boundary, so it equals the
whole-scene `interp23tap` exactly (done only for models whose upsampler is
`"interp23tap"`, the default, and that take the optional `lms` input).

Memory is bounded by the inputs (which may be `np.memmap`s or h5py datasets
read tile by tile), the output (an in-memory array, or any writable
array-like passed as `out=`, e.g. a `np.memmap`) and one batch of tiles.

Every tile is checked on the host as it is read, before the model runs:
NaN / inf raise a `ValueError` naming the input and the tile's position, and
values above 1.5 once normalised (digital numbers given without
`max_value=`, or a `max_value` below the data's range) warn once per call
with the largest value seen (a warning, not an error, for the reasons given
in `keras_pansharp.models.base`). The data are never altered.

The package, one concept per module: `tiles` (tile geometry and blending
weights), `model_graph` (what tiling reads from a model's layers),
`exact_plan` (the compiled exact scheme), `cache` (activations kept between
its passes) and `predict` (`predict_tiled`: checks, tile loading, the two
schemes). It consumes a model and never changes it; `keras_pansharp.
predict_scene` is the whole-scene entry point most callers want: it first
folds one set of detail gains into models that calibrate per image
(`keras_pansharp.calibration.scene_model`), then calls `predict_tiled`.
"""

from keras_pansharp.inference.model_graph import (
    all_layers,
    global_statistics_layers,
    receptive_radius,
    uses_interp23tap_lms,
)
from keras_pansharp.inference.predict import check_tiling_inputs, predict_tiled
from keras_pansharp.inference.tiles import (
    balanced_core_tiles,
    blend_weights,
    centre_crop,
    core_tiles,
    tile_starts,
)

__all__ = [
    "all_layers",
    "balanced_core_tiles",
    "blend_weights",
    "centre_crop",
    "check_tiling_inputs",
    "core_tiles",
    "global_statistics_layers",
    "predict_tiled",
    "receptive_radius",
    "tile_starts",
    "uses_interp23tap_lms",
]
