"""Helpers shared by the tests: tree comparisons and a progress bar that presses Ctrl-C."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np


def named_leaves(tree: Any) -> list[tuple[str, np.ndarray]]:
    """Leaves keyed by attribute/dict names only (tuple positions dropped), in order.

    Lets a gradtx state be compared with optax's even where the two nest the
    same fields differently (e.g. an extra identity in a chain).
    """
    out = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        names = [
            str(k.name) if isinstance(k, jax.tree_util.GetAttrKey) else str(k.key)
            for k in path
            if isinstance(k, (jax.tree_util.GetAttrKey, jax.tree_util.DictKey))
        ]
        out.append((".".join(names), np.asarray(leaf)))
    return out


class CtrlCBar:
    """Stands in for the tqdm bar: raises KeyboardInterrupt once ``after`` steps are shown."""

    def __init__(self, after: int):
        self.n, self.after = 0, after

    def update(self, k: int) -> None:
        self.n += k
        if self.n >= self.after:
            raise KeyboardInterrupt

    def close(self) -> None:
        pass


def scaled_learning_rate(lr: Any, factor: float) -> Any:
    """``lr * factor`` for a number, or the schedule with its starting value scaled (None: 1)."""
    import dataclasses

    import gradtx as gx

    if lr is None:  # an optimizer whose default step is 1 (lbfgs: the line search picks it)
        return factor
    if isinstance(lr, gx.Schedule):
        return dataclasses.replace(lr, init_value=lr.init_value * factor)
    return lr * factor


def swept_at(info: Any, factor: float) -> dict:
    """``{info.swept: default * factor}``: a registry entry's swept hyperparameter, scaled."""
    return {info.swept: scaled_learning_rate(info.defaults.get(info.swept), factor)}
