"""The compiled exact scheme: a functional model cut at its attention layers.

`_exact_plan(model, global_layers)` walks the graph of a functional model
whose `ChannelAttention` layers each sit in it once (PanTiny and its
presets) and cuts it into one segment per pass of the exact scheme, each a
compiled function (`tf.function`; `jax.jit`) that resumes the forward pass
where the previous one stopped. `predict_tiled` (`keras_pansharp.inference.
predict`) drives the passes; models the plan does not cover (`None`) run the
eager fallback there.
"""

from __future__ import annotations

import functools
import weakref

import keras

from keras_pansharp.inference.model_graph import all_layers


class _Unsupported(Exception):
    """The model's graph does not fit the compiled exact scheme."""


class _Segment:
    """One pass of the compiled exact scheme (see `_ExactPlan`)."""

    def __init__(self, prev, start, nodes, end, feeds, stats):
        self.prev = prev  # None, or (TransformerBlock | None, attention) to finish
        self.start = start  # KerasTensor the finished block outputs (or None)
        self.nodes = nodes  # graph nodes from `start` and `feeds` to `end`
        self.end = end  # next block's input, or the model output
        self.feeds = feeds  # {input name: KerasTensor} read by `nodes`
        self.stats = stats  # None (last segment), or (norm | None, attention)


class _ExactPlan:
    """The exact scheme of a functional model cut at its attention layers.

    With `b_s` the input of the block holding attention layer `s` and `v_s`
    that layer's values, segment `s`

    1. finishes block `s - 1` from the cached `b_{s-1}`: `v_{s-1}` from
       `LN(b_{s-1})`, then with the now fixed `M_{s-1} = A_{s-1}^T P` (`P`
       the attention's output projection) `y = b + v M`, `y + FFN(LN(y))`
       (`TransformerBlock`), or `v M` for a bare `ChannelAttention` node;
    2. runs the graph from there (and the model inputs it reads) to `b_s`;
    3. computes `q_s, k_s` and the masked core sums of the statistics.

    The last segment finishes the last block and runs the graph to the output.
    So every activation is computed once per tile, as in one forward pass
    (the block's first LayerNorm twice); only `b_s` crosses from one pass to
    the next (keeping `v_s` too measured slower: twice the bytes to keep,
    which at 2048^2 spilled to disk). Each segment is one
    backend-compiled function (`tf.function`; `jax.jit` with the variables as
    arguments; eager under `torch.no_grad` on PyTorch), traced once for the
    fixed tile and batch shape.
    """

    def __init__(self, model, segments):
        self.variables = list(model.variables)
        self.segments = segments
        self._compiled: dict[int, object] = {}

    def _body(self, seg):
        from keras import ops

        from keras_pansharp.utils import perf

        def body(bv, m, feeds, boxes):
            values = {id(t): feeds.get(name) for name, t in seg.feeds.items()}
            if seg.prev is not None:
                block, attn = seg.prev
                (b,) = bv
                # `v` again from the kept block input (cheaper than keeping
                # it: half the bytes between passes, one LayerNorm more).
                norm = None if block is None else block.norm1
                v = _qkv(b if norm is None else norm(b), attn, (2,))[0]
                y = perf.pointwise_conv(v, ops.cast(m, v.dtype))
                if block is not None:
                    y = b + y
                    y = y + block.ffn(block.norm2(y))
                values[id(seg.start)] = y
            for node in seg.nodes:
                args, kwargs = node.arguments.fill_in(values)
                if "training" in getattr(node.operation, "_call_context_args", ()):
                    kwargs["training"] = False
                outputs = node.operation(*args, **kwargs)
                for kt, value in zip(node.outputs, keras.tree.flatten(outputs)):
                    values[id(kt)] = value
            out = values[id(seg.end)]
            if seg.stats is None:
                return (out,)
            return (out, *_qkv_statistics(out, *seg.stats, boxes))

        return body

    def run(self, s, bv, m, feeds, boxes, grouped=False):
        """Segment `s` on one unit of tiles.

        Args:
            s: segment index.
            bv: None, or `(b,)` of the previous segment (given up: on JAX
                their buffers are reused for the new ones).
            m: None, or the `(dim, dim)` `A^T P` finishing the previous block.
            feeds: `{input name: array or None}` read by the segment.
            boxes: `(..., 4)` int32 core boxes.
            grouped: (JAX only) every array has a leading axis of batches,
                run in one call.

        Returns:
            `[out]` (NumPy) for the last segment, else `[b]` as backend
            tensors (left where the backend holds them, for the next pass)
            followed by the NumPy statistics `G, sq_q, sq_k`.
        """
        fn = self._compiled.get((s, grouped))
        if fn is None:
            fn = self._compile(self.segments[s], grouped)
            self._compiled[(s, grouped)] = fn
        res = list(fn(bv, m, feeds, boxes))
        if len(res) == 1:
            return [keras.ops.convert_to_numpy(res[0])]
        return res[:1] + [keras.ops.convert_to_numpy(t) for t in res[1:]]

    def _compile(self, seg, grouped):
        body = self._body(seg)
        backend = keras.backend.backend()
        if backend == "tensorflow":
            import tensorflow as tf

            # Relaxed shapes after a second tile/batch shape: no retracing
            # per scene size. (A partial: TensorFlow would count the traces of
            # all segments, which share `body`'s code, as retracing.) No
            # AutoGraph: the body is plain Python over the graph's nodes.
            return tf.function(
                functools.partial(body), reduce_retracing=True, autograph=False
            )
        if backend == "jax":
            return self._compile_jax(seg, body, grouped)
        if backend == "torch":
            import torch

            def eager(*args):
                with torch.no_grad():
                    return body(*args)

            return eager
        return body  # pragma: no cover - other backends run eagerly

    def _compile_jax(self, seg, body, grouped):
        import jax
        from jax import lax

        variables = self.variables

        def group_call(bv, m, feeds, boxes):
            """The batches of a group in one loop: XLA reuses one batch's
            buffers for the next, and `b` is updated in place."""
            n = boxes.shape[0]

            def one(i, bv):
                args = (None if bv is None else (bv[0][i],), m)
                return body(*args, jax.tree.map(lambda x: x[i], feeds), boxes[i])

            if seg.stats is None:
                return lax.map(lambda i: one(i, bv), jax.numpy.arange(n))
            shapes = jax.eval_shape(lambda: one(0, bv))
            init = [jax.numpy.zeros((n, *t.shape), t.dtype) for t in shapes[1:]]
            if bv is None:
                bv = [jax.numpy.zeros((n, *t.shape), t.dtype) for t in shapes[:1]]

            def step(i, carry):
                new = one(i, carry[:1])
                return tuple(
                    lax.dynamic_update_index_in_dim(c, t, i, 0)
                    for c, t in zip(carry, new)
                )

            return lax.fori_loop(0, n, step, (*bv, *init))

        def pure(state, bv, m, feeds, boxes):
            with keras.StatelessScope(state_mapping=list(zip(variables, state))):
                return (group_call if grouped else body)(bv, m, feeds, boxes)

        # The previous `b` is dead after the call: donate its buffer to
        # the new one (same shape) instead of allocating afresh.
        donate = (1,) if seg.stats is not None and seg.prev is not None else ()
        jitted = jax.jit(pure, donate_argnums=donate)
        return lambda *args: jitted([v.value for v in variables], *args)


def _qkv(a, attn, parts):
    """Parts (0: q, 1: k, 2: v) of `ChannelAttention` step 1 on its input `a`.

    `DWConv3x3(Conv1x1(a))` with the kernels sliced per part, as the layer
    does (with its own fast `perf` formulation where this `perf` has it).
    """
    from keras import ops

    from keras_pansharp.utils import perf

    dim = attn.dim
    kernel = ops.cast(attn.qkv.kernel, a.dtype)
    kernel = ops.reshape(kernel, (kernel.shape[-2], kernel.shape[-1]))
    dw_kernel = ops.cast(attn.qkv_dwconv.kernel, a.dtype)
    fused = getattr(perf, "pointwise_depthwise", None)
    depthwise = getattr(perf, "depthwise_conv3x3", None)

    def conv(i):
        pw, dw = (
            kernel[:, i * dim : (i + 1) * dim],
            dw_kernel[:, :, i * dim : (i + 1) * dim],
        )
        if fused is not None:
            return fused(a, pw, dw)[0]
        if depthwise is not None:  # pragma: no cover - older perf module
            return depthwise(perf.pointwise_conv(a, pw), dw)
        return ops.depthwise_conv(  # pragma: no cover - older perf module
            perf.pointwise_conv(a, pw), dw, padding="same"
        )

    return [conv(i) for i in parts]


def _qkv_statistics(b, norm, attn, boxes):
    """`(sum q k^T, sum q^2, sum k^2)` over each tile's core.

    `b` is the block input (`norm` its LayerNorm, or None when `attn` takes
    `b` itself); q, k as in `ChannelAttention` step 1 (`_qkv`); `boxes`
    `(B, 4)` int32 core boxes `(y0, y1, x0, x1)` in tile coordinates (empty
    for the padding of the last batch). Float32 sums per tile, like the
    untiled call. (`v` is computed in the next pass, from the kept `b`.)
    """
    from keras import ops

    dim = attn.dim
    q, k = _qkv(b if norm is None else norm(b), attn, (0, 1))
    shape = ops.shape(q)  # dynamic on TensorFlow (relaxed tile shapes)
    rows = ops.expand_dims(ops.arange(shape[1], dtype="int32"), 1)
    cols = ops.expand_dims(ops.arange(shape[2], dtype="int32"), 0)
    boxes = ops.convert_to_tensor(boxes, "int32")

    def edge(i):
        return ops.reshape(boxes[:, i], (-1, 1, 1))

    inside = ops.logical_and(
        ops.logical_and(rows >= edge(0), rows < edge(1)),
        ops.logical_and(cols >= edge(2), cols < edge(3)),
    )
    mask = ops.reshape(ops.cast(inside, "float32"), (shape[0], -1, 1))
    q = ops.reshape(ops.cast(q, "float32"), (shape[0], -1, dim)) * mask
    k = ops.reshape(ops.cast(k, "float32"), (shape[0], -1, dim))
    return (
        # Contracting the pixel axis directly (no transposed copy of q: on
        # JAX/XLA CPU that copy costs as much as computing q, k and v).
        ops.einsum("bpi,bpj->bij", q, k),
        ops.sum(ops.square(q), axis=1),
        ops.sum(ops.square(k) * mask, axis=1),
    )


def _graph_nodes(end, start, inputs):
    """Nodes computing `end` from `start` and the model `inputs` (topological).

    Returns:
        `(nodes, feeds)`: the nodes to run and the `{name: KerasTensor}` model
        inputs they read.

    Raises:
        _Unsupported: `end` does not depend on `start`.
    """
    by_id = {id(t): name for name, t in inputs.items()}
    nodes, seen, feeds, reached = [], set(), {}, [start is None]

    def visit(tensor):
        if start is not None and tensor is start:
            reached[0] = True
            return
        if id(tensor) in by_id:
            feeds[by_id[id(tensor)]] = tensor
            return
        history = tensor._keras_history
        node = history.operation._inbound_nodes[history.node_index]
        if id(node) in seen:
            return
        seen.add(id(node))
        if node.is_input:
            raise _Unsupported("an input outside the model's input dict")
        for parent in node.input_tensors:
            visit(parent)
        nodes.append(node)

    visit(end)
    if not reached[0]:
        raise _Unsupported("a segment does not depend on the previous one")
    return nodes, dict(sorted(feeds.items()))


def _exact_plan(model, global_layers) -> _ExactPlan | None:
    """The compiled exact scheme of `model`, or None where it does not apply.

    Applies to functional models with dict inputs (`ms`, `pan`, `lms`) and
    one output whose global-statistics layers are each either a node of the
    graph or the `attn` of a `TransformerBlock` node (PanTiny), called once,
    such that the graph between two consecutive such nodes runs no other
    one. Other models use the eager scheme.
    """
    from keras_pansharp.layers.transformer import TransformerBlock

    try:
        inputs, output = model.input, model.output
    except (AttributeError, ValueError):
        return None
    if not isinstance(inputs, dict) or not set(inputs) <= {"ms", "pan", "lms"}:
        return None
    if isinstance(output, list | tuple | dict):
        return None
    global_ids = {id(g) for g in global_layers}

    def runs_global(node):
        op = node.operation
        subs = all_layers(op) if isinstance(op, keras.layers.Layer) else []
        return id(op) in global_ids or any(id(sub) in global_ids for sub in subs)

    try:
        all_nodes, _ = _graph_nodes(output, None, inputs)
        stops = []
        for layer in global_layers:
            owner = [
                node
                for node in all_nodes
                if node.operation is layer
                or (
                    isinstance(node.operation, keras.layers.Layer)
                    and any(sub is layer for sub in all_layers(node.operation))
                )
            ]
            if (
                len(owner) != 1
                or len(owner[0].input_tensors) != 1
                or len(owner[0].outputs) != 1
            ):
                return None
            op = owner[0].operation
            if op is layer:
                block, norm = None, None
            elif type(op) is TransformerBlock and op.attn is layer:
                # (Not a subclass: its `call` is what segments replay.)
                block, norm = op, op.norm1
            else:
                return None
            stops.append((owner[0], block, norm, layer))
        segments = []
        for s in range(len(stops) + 1):
            prev = (stops[s - 1][1], stops[s - 1][3]) if s else None
            start = stops[s - 1][0].outputs[0] if s else None
            end = stops[s][0].input_tensors[0] if s < len(stops) else output
            nodes, feeds = _graph_nodes(end, start, inputs)
            if any(runs_global(node) for node in nodes):
                return None
            stats = stops[s][2:] if s < len(stops) else None
            segments.append(_Segment(prev, start, nodes, end, feeds, stats))
    except (_Unsupported, AttributeError, IndexError):
        return None
    return _ExactPlan(model, segments)


_PLANS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _cached_plan(model, global_layers):
    """`_exact_plan(model)`, built (and its functions traced) once per model."""
    try:
        return _PLANS[model]
    except KeyError:
        pass
    except TypeError:  # pragma: no cover - not weak-referenceable
        return _exact_plan(model, global_layers)
    plan = _PLANS[model] = _exact_plan(model, global_layers)
    return plan
