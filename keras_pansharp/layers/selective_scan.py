"""Mamba's selective scan (S6) in `keras.ops`, for TensorFlow and JAX.

The selective state-space scan of Gu and Dao (2023), "Mamba: Linear-Time
Sequence Modeling with Selective State Spaces", written without CUDA: it
follows the semantics of `selective_scan_ref` in `mamba_ssm/ops/
selective_scan_interface.py` (the pure-PyTorch reference of the CUDA kernel,
as shipped in hustvl/Vim's `mamba-1p1p1`, which Pan-Mamba builds on), with
channels-last tensors:

    delta = softplus(delta + delta_bias)                  (batch, L, d)
    h_t   = exp(delta_t * A) * h_{t-1} + delta_t * B_t * u_t   (batch, d, n)
    y_t   = <h_t, C_t> + D * u_t,   out = y * silu(z)

The state recurrence is a first-order linear recurrence
`h_t = a_t * h_{t-1} + b_t` (`linear_recurrence`), computed one of two ways
(`method`):

**Sequential** (the default on CPUs, `default_method()`): `keras.ops.scan`
steps through the sequence, `h = a_t * h + b_t`, with `a` and `b` computed
for a whole chunk at once outside the loop. `L` small steps, no more work
than the recurrence itself. Measured on 2 idle CPU cores (one scan,
`benchmarks/bench_selective_scan.py --modes=chunked`, 16 states; forward,
then forward and gradient): `(8, 4096, 64)` inputs, TensorFlow 0.19 s and
0.52 s against the associative scan's 1.27 s and 4.31 s, JAX 0.15 s and
0.37 s against 0.29 s and 1.02 s; `(1, 65536, 64)`, TensorFlow 0.75 s and
2.09 s against 2.57 s and 9.02 s, JAX 0.58 s and 1.47 s against 0.71 s
and 1.58 s (docs/performance.md). Long sequences are cut into chunks of
`SEQUENTIAL_CHUNK` steps carried by an outer `keras.ops.scan`, each chunk
rematerialised for the gradient (see below); in one-off runs on shared
cores chunks of 256 trained a batch fastest and chunks of 1024 predicted
one large image fastest, and 512 lies between them. It also works when the
length is unknown at trace time (a TensorFlow SavedModel with dynamic
spatial dimensions).

**Associative** (the default on GPUs and TPUs): a parallel scan over the
pairs `(a, b)` with the operator
`(a1, b1) . (a2, b2) = (a1 * a2, a2 * b1 + b2)`: `log2(L)` passes over the
whole sequence, which keeps an accelerator busy but costs more than the
sequential loop on a CPU:

- When the sequence length is static (always under JAX, and under
  TensorFlow when the spatial size is known) `keras.ops.associative_scan` is
  used (work-efficient, differentiable on both backends).
- When it is unknown at trace time (a TensorFlow graph with dynamic spatial
  dimensions, e.g. an exported SavedModel), `keras.ops.associative_scan`
  cannot be traced efficiently (Keras 3.15's TensorFlow version fails on
  symbolic lengths, or nests 48 levels of `tf.cond`), so a Hillis-Steele
  doubling scan inside `keras.ops.while_loop` is used instead:
  `ceil(log2 L)` steps of `b += a * shift(b, k); a *= shift(a, k)`.

Both give the same values (up to float rounding).

For the associative scan under JAX, long static sequences (more than `CHUNK`
steps, i.e. images above 32 x 32 tokens) are scanned chunk by chunk
(`_chunked_scan`): `keras.ops.scan` carries the state `(batch, d, n)` from
one chunk of `CHUNK` steps to the next, the `(batch, CHUNK, d, n)` tensors
of a chunk exist only inside the loop body, and the body is rematerialised
(`keras.remat`) so that training keeps only the chunk's `(batch, CHUNK, d)`
inputs for the backward pass. Without it the `(batch, L, d, n)` states and
the scan's log2(L) levels are all kept for the gradient: XLA asked for 402
GB to train Pan-Mamba on a 16 x 128^2 batch (1.5 MB per PAN pixel); chunked,
2.7 GB for one 128^2 patch instead of 25 GB. Under TensorFlow associative
scans up to `TF_WHOLE_MAX` steps (64 x 64 tokens) are scanned whole, longer
ones in chunks: there a chunk loop costs more time than it saves memory on
short sequences (one scan's forward and gradient, `(1, L, 64)` inputs, 16
states: 0.37 s whole against 1.06 s chunked at L = 4096, for about 0.3 GB
either way), but the whole scan's memory grows with L (1.3 GB against 0.27
GB at L = 16384, where chunked takes 1.6x the time), and Pan-Mamba runs 30
scans per image: its prediction of one 256 x 256 image peaks at 7.2 GB
whole, 3.9 GB chunked (126 s against 140 s; 2 CPU cores shared with a
training job).
`selective_scan(..., chunk_size=..., method=...)` chooses explicitly.
"""

from __future__ import annotations

import functools
import numbers

import keras
from keras import ops

from keras_pansharp.utils.perf import has_accelerator

#: Steps per chunk of the chunked associative scan (its default under JAX).
CHUNK = 1024
#: Steps per chunk of the sequential scan (its default on every backend).
SEQUENTIAL_CHUNK = 512
#: Longest sequence scanned whole by default under TensorFlow (longer: chunks).
TF_WHOLE_MAX = 4096


METHODS = ("sequential", "associative")


def _check_method(method) -> None:
    if method not in METHODS:
        raise ValueError(
            f"selective_scan: method must be one of {METHODS}, got {method!r}."
        )


def default_method() -> str:
    """The recurrence method `selective_scan` uses by default.

    `"associative"` when the Keras backend sees a GPU or TPU (a parallel scan
    keeps thousands of cores busy), else `"sequential"`: on a CPU the
    associative scan's `log2(L)` passes over `(batch, L, d, n)` tensors cost
    more than `L` small steps (forward and gradient of one scan, `(8, 4096,
    64)` inputs, 16 states, 2 idle cores: TensorFlow 0.52 s against 4.31 s,
    JAX 0.37 s against 1.02 s).

    Returns:
        `"sequential"` or `"associative"`.
    """
    return "associative" if _accelerator(keras.backend.backend()) else "sequential"


@functools.cache
def _accelerator(backend: str) -> bool:
    """`has_accelerator()`, asked once per backend."""
    return has_accelerator()


def _combine(left, right):
    a_l, b_l = left
    a_r, b_r = right
    return a_l * a_r, a_r * b_l + b_r


def _shift(x, k):
    """`x` delayed by `k` steps along axis 1 (zeros in front), same length."""
    return ops.concatenate([ops.zeros_like(x[:, :k]), x[:, :-k]], axis=1)


def _doubling_scan(a, b):
    """Hillis-Steele scan of `h_t = a_t h_{t-1} + b_t` along axis 1 (any length)."""
    length = ops.shape(a)[1]

    def cond(k, a, b):
        return k < length

    def body(k, a, b):
        # Positions t < k are combined with zeros (h_{-1} = 0), so they keep
        # their value; `a` may be zeroed there, which is harmless.
        b = b + a * _shift(b, k)
        a = a * _shift(a, k)
        return k * 2, a, b

    _, _, h = ops.while_loop(cond, body, (ops.convert_to_tensor(1), a, b))
    return h


def _sequential_recurrence(a, b, h0=None):
    """`h_t = a_t h_{t-1} + b_t` step by step (`keras.ops.scan`, any length).

    `h0`: `(batch, ...)` state before the first step (zero if None).
    """
    if h0 is None:
        h0 = ops.zeros_like(b[:, 0])
    return _recurrence_with_gradient(a, b, h0)


def _time_major_scan(a, b, h0, reverse=False):
    """States of `h = a_t * h + b_t` over axis 1 of `a`, `b` (from `h0`)."""
    perm = (1, 0) + tuple(range(2, len(a.shape)))  # time-major and back

    def step(h, ab):
        h = ab[0] * h + ab[1]
        # Keras' TensorFlow `scan` stacks outputs shaped like the carry.
        return h, h

    # One `(L, 2, batch, ...)` input: Keras 3.15's TensorFlow `scan` fails on
    # several inputs whose length is unknown at trace time.
    ab = ops.stack([ops.transpose(a, perm), ops.transpose(b, perm)], axis=1)
    _, h = ops.scan(step, h0, ab, reverse=reverse)
    return ops.transpose(h, perm)


@ops.custom_gradient
def _recurrence_with_gradient(a, b, h0):
    """`_time_major_scan` with its gradient written as one reverse scan.

    Autodiff of the loop would step back through it one step at a time (on
    2 idle CPU cores, forward and gradient of one scan, `(8, 4096, 64)`
    inputs, 16 states: TensorFlow 1.26 s against 0.52 s with this gradient,
    JAX 0.49 s against 0.37 s). With `g_t = dL/dh_t + a_{t+1} g_{t+1}` (a
    recurrence run backwards): `dL/db_t = g_t`, `dL/da_t = g_t h_{t-1}` and
    `dL/dh0 = a_0 g_0`.
    """
    h = _time_major_scan(a, b, h0)

    def grad(*args, upstream=None):
        if upstream is None:
            (upstream,) = args
        # a_{t+1}, and 0 after the last step.
        a_next = ops.concatenate([a[:, 1:], ops.zeros_like(a[:, :1])], axis=1)
        g = _time_major_scan(a_next, upstream, ops.zeros_like(h0), reverse=True)
        h_prev = ops.concatenate([ops.expand_dims(h0, 1), h[:, :-1]], axis=1)
        return g * h_prev, g, a[:, 0] * g[:, 0]

    return h, grad


def linear_recurrence(a, b, method: str = "associative"):
    """All states of `h_t = a_t * h_{t-1} + b_t` with `h_{-1} = 0`.

    Args:
        a: `(batch, L, ...)` multipliers (Mamba: `exp(delta * A)`).
        b: `(batch, L, ...)` inputs, same shape as `a`.
        method: `"associative"` (a parallel scan: `log2(L)` passes over the
            whole sequence, fast on GPUs) or `"sequential"` (one step at a
            time with `keras.ops.scan`: `L` small steps, no `log2(L)`
            factor of work, fastest on CPUs).

    Returns:
        `(batch, L, ...)` tensor of the states `h_0 ... h_{L-1}`.

    Example:
    >>> import numpy as np
    >>> a = np.full((1, 4, 1), 0.5, "float32")
    >>> b = np.ones((1, 4, 1), "float32")
    >>> ops.convert_to_numpy(linear_recurrence(a, b))[0, :, 0].tolist()
    [1.0, 1.5, 1.75, 1.875]
    """
    _check_method(method)
    if method == "sequential":
        return _sequential_recurrence(a, b)
    if a.shape[1] is not None:
        if a.shape[1] < 2:
            return b
        h = ops.associative_scan(_combine, (a, b), axis=1)[1]
        # TensorFlow's version loses the static shape (tf.cond merges) when
        # another dimension is unknown; restore it (a no-op on values).
        return ops.reshape(h, ops.shape(b))
    return _doubling_scan(a, b)


def selective_scan(
    u,
    delta,
    A,
    B,
    C,
    D=None,
    z=None,
    delta_bias=None,
    delta_softplus: bool = True,
    chunk_size: int | None = None,
    method: str | None = None,
):
    """Mamba's selective scan, channels-last (`selective_scan_ref` semantics).

    Args:
        u: `(batch, L, d)` input sequence.
        delta: `(batch, L, d)` step sizes (before `delta_bias` / softplus).
        A: `(d, n)` state matrix (diagonal per channel; Mamba passes
            `-exp(A_log)`).
        B: `(batch, L, n)` input-dependent input matrix.
        C: `(batch, L, n)` input-dependent output matrix.
        D: optional `(d,)` skip connection.
        z: optional `(batch, L, d)` gate: the output is multiplied by
            `silu(z)`.
        delta_bias: optional `(d,)` added to `delta`.
        delta_softplus: apply softplus to `delta` (Mamba: `True`).
        chunk_size: scan static sequences longer than this chunk by chunk
            (the state carried between chunks, each chunk recomputed for the
            gradient): the same values with memory for one chunk of states.
            None: `CHUNK` under JAX; on other backends `CHUNK` for
            sequences longer than `TF_WHOLE_MAX`, else the whole sequence;
            0: the whole sequence. For `method="sequential"` the default is
            `SEQUENTIAL_CHUNK` on every backend.
        method: how the state recurrence is computed: `"sequential"` (one
            step at a time, `keras.ops.scan`) or `"associative"` (parallel
            scan; see `linear_recurrence`). None: `default_method()`,
            sequential on CPUs and associative on GPUs/TPUs. Both give the
            same values up to float rounding.

    Returns:
        `(batch, L, d)` output, the dtype of `u`.
    """
    method = default_method() if method is None else method
    _check_method(method)
    if delta_bias is not None:
        delta = delta + delta_bias
    if delta_softplus:
        delta = ops.softplus(delta)
    length = u.shape[1]
    if chunk_size is None and method == "sequential":
        chunk_size = SEQUENTIAL_CHUNK
    elif chunk_size is None:
        long = length is not None and length > TF_WHOLE_MAX
        chunk_size = CHUNK if keras.backend.backend() == "jax" or long else 0
    elif not (isinstance(chunk_size, numbers.Integral) and chunk_size >= 0):
        raise ValueError(
            f"selective_scan: chunk_size must be an int >= 0, got {chunk_size!r}."
        )
    if chunk_size and length is not None and length > chunk_size:
        y = _chunked_scan(u, delta, A, B, C, int(chunk_size), method)
    else:
        y = _scan(u, delta, A, B, C, method=method)
    if D is not None:
        y = y + u * D
    if z is not None:
        y = y * ops.silu(z)
    return y


def _scan(u, delta, A, B, C, h0=None, method="associative"):
    """`<h_t, C_t>` for all t, and the last state `h_{L-1}` if `h0` is given.

    `h0` (`(batch, d, n)`) is the state before the first step (zero if None).
    """
    delta_e = ops.expand_dims(delta, -1)  # (batch, L, d, 1)
    delta_a = ops.exp(delta_e * A)  # (batch, L, d, n)
    delta_b_u = delta_e * ops.expand_dims(B, 2) * ops.expand_dims(u, -1)
    if method == "sequential":
        h = _sequential_recurrence(delta_a, delta_b_u, h0)  # (batch, L, d, n)
    else:
        if h0 is not None:
            # h_0 = a_0 h_{-1} + b_0: fold the carried state into the first input.
            first = delta_b_u[:, :1] + delta_a[:, :1] * ops.expand_dims(h0, 1)
            delta_b_u = ops.concatenate([first, delta_b_u[:, 1:]], axis=1)
        h = linear_recurrence(delta_a, delta_b_u)  # (batch, L, d, n)
    y = ops.sum(h * ops.expand_dims(C, 2), axis=-1)  # (batch, L, d)
    return y if h0 is None else (y, h[:, -1])


def _chunked_scan(u, delta, A, B, C, size: int, method: str = "associative"):
    """`_scan` in chunks of `size` steps, state carried by `keras.ops.scan`.

    The sequence is padded at its end to whole chunks (a causal scan: the
    padding changes no earlier output) and cut back afterwards.
    """
    batch, length, d = ops.shape(u)[0], u.shape[1], u.shape[2]
    n = B.shape[-1]
    chunks = -(-length // size)
    pad = chunks * size - length

    def split(x):
        # (batch, L, k) -> (chunks, batch, size, k)
        if pad:
            x = ops.pad(x, [[0, 0], [0, pad], [0, 0]])
        x = ops.reshape(x, (batch, chunks, size, x.shape[-1]))
        return ops.transpose(x, (1, 0, 2, 3))

    @keras.remat
    def scan_chunk(h, u_c, delta_c, B_c, C_c, A):
        return _scan(u_c, delta_c, A, B_c, C_c, h0=h, method=method)

    def body(carry, xs):
        h, A, _ = carry
        y, h = scan_chunk(h, *xs, A)
        # Keras' TensorFlow `scan` stacks outputs shaped like the carry.
        return (h, A, y), (h, A, y)

    h0 = ops.zeros((batch, d, n), dtype=u.dtype)
    y0 = ops.zeros((batch, size, d), dtype=u.dtype)
    xs = tuple(split(x) for x in (u, delta, B, C))
    _, (_, _, y) = ops.scan(body, (h0, ops.convert_to_tensor(A, u.dtype), y0), xs)
    # (chunks, batch, size, d) -> (batch, L, d)
    y = ops.reshape(ops.transpose(y, (1, 0, 2, 3)), (batch, chunks * size, d))
    return y[:, :length]
