"""Every registered class of the package owns its registered name.

Keras silently replaces an object registered twice under the same name, so
two classes named alike in different modules would load each other's files.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import keras

import keras_pansharp


def _package_classes():
    seen = {}
    for info in pkgutil.walk_packages(keras_pansharp.__path__, "keras_pansharp."):
        if info.name.endswith(("__main__", ".cli")):
            continue
        module = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if obj.__module__ == info.name:
                seen[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return seen


def test_registered_names_are_unique():
    classes = _package_classes()
    registered = {
        name: cls
        for name, cls in classes.items()
        if keras.saving.get_registered_name(cls).startswith("keras_pansharp>")
    }
    assert registered, "no registered classes found"
    for name, cls in registered.items():
        key = keras.saving.get_registered_name(cls)
        assert keras.saving.get_registered_object(key) is cls, (
            f"{name} is registered as {key!r}, which resolves to "
            f"{keras.saving.get_registered_object(key)}"
        )
