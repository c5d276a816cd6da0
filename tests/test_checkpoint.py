"""Checkpoints: exact round trips, clear mismatch errors, atomic writes, resumed runs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

import gradtx as gx
from helpers import swept_at
from gradtx.checkpoint import io as ckpt
from gradtx.optimizers.registry import OPTIMIZERS


class State(NamedTuple):
    count: jax.Array
    mu: Any
    extra: Any = None


def _bits(x: Any) -> np.ndarray:
    """The raw bytes of an array (keys: their key data), for bit-for-bit comparison."""
    if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        x = jax.random.key_data(x)
    return np.ascontiguousarray(np.asarray(x)).view(np.uint8)


def assert_identical(a: Any, b: Any) -> None:
    """Same structure, same leaf types, dtypes, shapes and bytes."""
    la, ta = jax.tree_util.tree_flatten(a, is_leaf=lambda x: x is None)
    lb, tb = jax.tree_util.tree_flatten(b, is_leaf=lambda x: x is None)
    assert ta == tb
    for x, y in zip(la, lb):
        assert type(x) is type(y), (type(x), type(y))
        if x is None or isinstance(x, (bool, int, float, complex)):
            assert np.asarray(x).tobytes() == np.asarray(y).tobytes(), (x, y)
            continue
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(_bits(x), _bits(y))


def _tree() -> Any:
    rng = np.random.default_rng(0)
    bf16_bits = rng.integers(0, 2**16, size=(4, 3), dtype=np.uint16)  # NaN payloads included
    return {
        "bf16": jnp.asarray(bf16_bits.view(ml_dtypes.bfloat16)),
        "f8": np.arange(6, dtype=np.uint8).view(ml_dtypes.float8_e4m3fn),
        "c64": jnp.asarray(rng.normal(size=3) + 1j * rng.normal(size=3), jnp.complex64),
        "c128": jnp.asarray([1 / 3 + 2j / 7], jnp.complex128),
        "f64": jnp.asarray([np.pi, -0.0, np.inf, np.nextafter(1.0, 2.0)]),
        "empty": jnp.zeros((0, 5), jnp.float32),
        "np_scalar": np.float32(1.5),
        "hypers": [0.1, 3, True, 2 - 1j],
        "key": jax.random.key(7),
        "rbg_keys": jax.random.split(jax.random.key(1, impl="rbg"), 2),
        "state": (State(jnp.asarray(5, jnp.int32), {"w": jnp.ones(2, jnp.float32)}), None),
    }


def test_round_trip_is_bit_exact(tmp_path):
    tree = _tree()
    path = tmp_path / "ckpt.npz"
    ckpt.save(path, tree)
    assert_identical(ckpt.load(path, like=tree), tree)
    assert os.listdir(tmp_path) == ["ckpt.npz"]  # no temp files left behind


def test_like_may_be_abstract_and_values_come_from_the_file(tmp_path):
    saved = {"lr": 0.25, "w": jnp.arange(3.0), "k": jax.random.key(3)}
    ckpt.save(tmp_path / "c", saved)
    like = {"lr": 1.0, "w": jax.ShapeDtypeStruct((3,), jnp.float64), "k": jax.random.key(0)}
    assert_identical(ckpt.load(tmp_path / "c", like=like), saved)


def test_without_like_rebuilds_dicts_lists_tuples_and_none(tmp_path):
    tree = {"a": [jnp.ones(2, jnp.bfloat16), (None, 2.5)], "b": np.arange(3, dtype=np.int16), "c": {1: 1, 2: None}}
    ckpt.save(tmp_path / "c", tree)
    assert_identical(ckpt.load(tmp_path / "c"), tree)


def test_without_like_custom_nodes_ask_for_like(tmp_path):
    ckpt.save(tmp_path / "c", {"s": State(jnp.zeros([], jnp.int32), None)})
    with pytest.raises(ValueError, match=r"State.*pass `like=`"):
        ckpt.load(tmp_path / "c")


def _mismatch(tmp_path, saved, like, match):
    ckpt.save(tmp_path / "c", saved)
    with pytest.raises(ValueError, match=match):
        ckpt.load(tmp_path / "c", like=like)


def test_mismatch_errors_name_the_leaf(tmp_path):
    w = jnp.ones(3, jnp.float32)
    _mismatch(tmp_path, {"w": w}, {"w": jnp.ones(4, jnp.float32)},
              r"at \['w'\]: the file has float32\[3\], `like` has float32\[4\]")
    _mismatch(tmp_path, {"w": w}, {"w": jnp.ones(3, jnp.bfloat16)},
              r"at \['w'\]: the file has float32\[3\], `like` has bfloat16\[3\]")
    _mismatch(tmp_path, {"lr": 0.1}, {"lr": jnp.asarray(0.1, jnp.float64)},
              r"at \['lr'\]: the file has a Python float, `like` has float64\[\]")
    _mismatch(tmp_path, {"w": w}, {"w": w, "x": w},
              r"at \['x'\]: `like` has a leaf the file lacks")
    _mismatch(tmp_path, {"v": w, "w": w}, {"w": w}, r"at \['w'\]: the file's leaf here is at path \['v'\]")
    _mismatch(tmp_path, {"w": (w, w)}, {"w": [w, w]},
              r"at \['w'\]\[0\]: the subtree starting here is a tuple in the file and a list")
    _mismatch(tmp_path, State(w, None), State(w, w), r"at \.mu: the file has None")


def test_missing_file_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        ckpt.load(tmp_path / "nope.npz")
    np.savez(tmp_path / "plain.npz", a=np.ones(2))
    with pytest.raises(ValueError, match="not a gradtx checkpoint"):
        ckpt.load(tmp_path / "plain.npz")
    (tmp_path / "junk").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable .npz"):
        ckpt.load(tmp_path / "junk")


def test_unstorable_leaves_are_named(tmp_path):
    with pytest.raises(TypeError, match=r"leaf at \['name'\] is a str"):
        ckpt.save(tmp_path / "c", {"name": "adam"})
    with pytest.raises(ValueError, match=r"\['n'\] does not fit in int64"):
        ckpt.save(tmp_path / "c", {"n": 2**70})
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_killed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch, error):
    path = tmp_path / "ckpt.npz"
    old = {"w": jnp.arange(4.0)}
    ckpt.save(path, old)

    def dies_midway(f, arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise error("killed")

    monkeypatch.setattr(ckpt, "_write", dies_midway)
    with pytest.raises(error):
        ckpt.save(path, {"w": jnp.zeros(4)})
    assert os.listdir(tmp_path) == ["ckpt.npz"]
    assert_identical(ckpt.load(path, like=old), old)


# Shared by this process and the resumed one, so both run the same computation.
STEP_SRC = """
import jax, jax.numpy as jnp
from gradtx.core.base import apply_updates

def loss(p):
    w, (b,) = p["w"], p["b"]
    return jnp.sum((w - 1.0) ** 2 * jnp.arange(1, 4, dtype=w.dtype)) + jnp.sum(b**4 + b)

@jax.jit
def step(opt, params, state):
    v, g = jax.value_and_grad(loss)(params)
    # Every optimizer takes (and all but the line searches and Polyak ignore) the loss.
    updates, state = opt.update(g, state, params, value=v, grad=g, value_fn=loss)
    return apply_updates(params, updates), state

def run(opt, params, state, n):
    for _ in range(n):
        params, state = step(opt, params, state)
    return params, state

def start():
    return {"w": jnp.asarray([0.5, -1.0, 2.0], jnp.float32), "b": (jnp.asarray([0.3]),)}
"""

RESUME_SRC = """
import sys
import jax
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
from gradtx.checkpoint.io import load, save
from gradtx.optimizers.registry import OPTIMIZERS
exec(STEP_SRC)
folder, more = sys.argv[1], int(sys.argv[2])
for name, info in OPTIMIZERS.items():
    fresh = info.make()  # default hyperparameters: the file's must win
    like = (fresh, start(), fresh.init(start()))
    opt, params, state = load(f"{folder}/{name}.npz", like=like)
    save(f"{folder}/{name}.out.npz", run(opt, params, state, more))
"""


def test_every_optimizer_resumes_bit_for_bit_in_a_fresh_process(tmp_path):
    ns: dict[str, Any] = {}
    exec(STEP_SRC, ns)
    k, more = 3, 4
    expected = {}
    for name, info in OPTIMIZERS.items():
        opt = info.make(**swept_at(info, 0.5))
        params, state = ns["run"](opt, ns["start"](), opt.init(ns["start"]()), k)
        ckpt.save(tmp_path / f"{name}.npz", (opt, params, state))
        expected[name] = ns["run"](opt, params, state, more)
    script = f"STEP_SRC = {STEP_SRC!r}\n" + textwrap.dedent(RESUME_SRC)
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), str(more)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name, want in expected.items():
        got = ckpt.load(tmp_path / f"{name}.out.npz", like=want)
        assert_identical(got, want)
        assert not np.array_equal(np.asarray(got[0]["w"]), np.asarray(ns["start"]()["w"])), name


def test_orbax_saves_and_restores_gradtx_state(tmp_path):
    ocp = pytest.importorskip("orbax.checkpoint")
    opt = OPTIMIZERS["adam"].make()
    params = {"w": jnp.asarray([1.5, -2.0], jnp.bfloat16), "d": jnp.arange(3.0)}
    state = opt.update(params, opt.init(params), params)[1]
    tree = (opt, params, state, {"c": jnp.asarray([1 + 2j], jnp.complex64)})
    checkpointer = ocp.StandardCheckpointer()
    try:
        checkpointer.save(tmp_path / "orbax", tree)
        checkpointer.wait_until_finished()
        restored = checkpointer.restore(tmp_path / "orbax", jax.eval_shape(lambda: tree))
    finally:
        checkpointer.close()
    assert jax.tree.structure(restored) == jax.tree.structure(tree)
    for x, y in zip(jax.tree.leaves(restored), jax.tree.leaves(tree)):
        assert np.asarray(x).dtype == np.asarray(y).dtype
        np.testing.assert_array_equal(_bits(x), _bits(y))


def test_weak_hyperparameters_round_trip_weak_and_old_files_still_load(tmp_path):
    """Optimizers store Python numbers as weakly typed 0-d arrays: a checkpoint keeps the weak
    type (a restored optimizer computes in the params' dtype, as the saved one did), and a file
    written when hyperparameters were Python floats loads into today's optimizer."""
    opt = gx.adam(0.125, b1=0.75)
    ckpt.save(tmp_path / "o", opt)
    back = ckpt.load(tmp_path / "o", like=gx.adam(1e-3))
    for a, b in zip(jax.tree.leaves(opt), jax.tree.leaves(back)):
        assert jax.typeof(b) == jax.typeof(a) and jax.typeof(b).weak_type
        assert np.asarray(a) == np.asarray(b)
    old = jax.tree.map(lambda x: float(x), opt)  # what a file from before held
    ckpt.save(tmp_path / "old", old)
    back = ckpt.load(tmp_path / "old", like=gx.adam(1e-3))
    assert [float(x) for x in jax.tree.leaves(back)] == [float(x) for x in jax.tree.leaves(opt)]
    assert all(jax.typeof(x).weak_type for x in jax.tree.leaves(back))
