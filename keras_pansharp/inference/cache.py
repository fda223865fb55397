"""Activations kept between the passes of the exact scheme, spilled to disk.

The block input `b` of every tile (`dim` floats per tile pixel) stays in
memory up to a budget and goes to an anonymous temporary file beyond it, so
memory stays bounded for any scene size (see `keras_pansharp.inference`).
"""

from __future__ import annotations

import shutil
import tempfile

import keras
import numpy as np


def _nbytes(fields) -> int:
    """Bytes of arrays given as `(shape, dtype)` pairs."""
    return sum(
        int(np.prod(shape)) * np.dtype(keras.backend.standardize_dtype(dtype)).itemsize
        for shape, dtype in fields
    )


class _ActivationCache:
    """`(b,)` of each batch of tiles between two passes of the exact scheme.

    Batches are kept as the backend's own tensors (no copy) while their total
    size stays within `budget_mb`; the others go to an anonymous temporary
    file in `directory`, read and written with plain file I/O (so those pages
    are not part of the process's resident set). Writing a batch replaces
    the one stored under the same key (in place).
    """

    def __init__(self, budget_mb, directory):
        self.budget = max(float(budget_mb), 0.0) * 2**20
        self.directory = directory
        self._mem: dict[int, list] = {}
        self._used = 0
        self._slots: dict[int, tuple[int, list]] = {}  # key: (offset, fields)
        self._end = 0
        self._file = None

    def put(self, key, arrays):
        fields = [(tuple(a.shape), a.dtype) for a in arrays]
        size = _nbytes(fields)
        if key in self._mem:
            old = self._mem.pop(key)
            self._used -= _nbytes([(a.shape, a.dtype) for a in old])
        if key not in self._slots and self._used + size <= self.budget:
            self._mem[key] = list(arrays)
            self._used += size
            return
        data = [np.ascontiguousarray(keras.ops.convert_to_numpy(a)) for a in arrays]
        fields = [(a.shape, a.dtype) for a in data]
        slot = self._slots.get(key)
        if slot is None or _nbytes(slot[1]) != size:
            if self._file is None:
                self._file = tempfile.TemporaryFile(dir=self.directory)
            slot = (self._end, fields)
            self._end += size
        self._slots[key] = (slot[0], fields)
        self._file.seek(slot[0])
        for a in data:
            self._file.write(memoryview(a.reshape(-1).view(np.uint8)))

    def get(self, key) -> list:
        if key in self._mem:
            return self._mem[key]
        offset, fields = self._slots[key]
        self._file.seek(offset)
        out = []
        for shape, dtype in fields:
            arr = np.empty(shape, dtype)
            view = memoryview(arr.reshape(-1).view(np.uint8))
            got = 0
            while got < len(view):
                chunk = self._file.readinto(view[got:])
                if not chunk:
                    raise RuntimeError("predict_scene: activation cache truncated")
                got += chunk
            out.append(arr)
        return out

    def close(self):
        if self._file is not None:
            self._file.close()
        self._mem, self._slots, self._file = {}, {}, None


def _fits_disk(nbytes, directory) -> bool:
    """Whether `nbytes` fit in `directory` (default: the temporary folder)
    leaving 1 GB free."""
    free = shutil.disk_usage(directory or tempfile.gettempdir()).free
    return nbytes <= free - 2**30
