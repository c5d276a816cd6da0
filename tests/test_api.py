"""The public namespace: one name per object, documented, and runnable examples."""

import doctest
import importlib
import pkgutil

import pytest

import gradtx as gx

PUBLIC = {n: getattr(gx, n) for n in dir(gx) if not n.startswith("_")}
MODULES = [m.name for m in pkgutil.walk_packages(gx.__path__, "gradtx.") if not m.name.endswith("__main__")]


def test_one_name_per_object():
    seen = {}
    for name, obj in PUBLIC.items():
        if isinstance(obj, (str, int, float, dict, type(gx))) or obj is None:
            continue
        assert id(obj) not in seen, f"gx.{name} and gx.{seen[id(obj)]} are the same object"
        seen[id(obj)] = name


def test_every_public_callable_is_documented():
    undocumented = [n for n, o in PUBLIC.items() if callable(o) and not (getattr(o, "__doc__", None) or "").strip()]
    assert not undocumented, undocumented


def test_every_optimizer_is_registered():
    factories = {info.factory for info in gx.OPTIMIZERS.values()}
    for name in ("sgd", "adagrad", "rmsprop", "adadelta", "adam", "adamw", "nadam", "nadamw", "adamax", "adamaxw", "amsgrad"):
        assert getattr(gx, name) in factories, name


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples_run(module):
    mod = importlib.import_module(module)
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0


def test_docstring_examples_exist():
    attempted = sum(doctest.testmod(importlib.import_module(m)).attempted for m in MODULES)
    assert attempted >= 10, attempted
