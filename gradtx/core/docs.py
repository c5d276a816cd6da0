"""Shared docstring fragments, so each argument is described once.

Use :func:`fill` as a decorator: ``{learning_rate}`` in a docstring becomes the
shared text below.
"""

from __future__ import annotations

import textwrap
from typing import Callable, TypeVar

F = TypeVar("F", bound=Callable)

_FRAGMENTS = {
    "learning_rate": "learning_rate: the step size $\\eta$ (>= 0): a float, a JAX array or a\n"
    "  schedule ``count -> value``. The update is multiplied by $-\\eta$.",
    "b1": "b1: decay rate $\\beta_1 \\in [0, 1)$ of the first-moment EMA.",
    "b2": "b2: decay rate $\\beta_2 \\in [0, 1)$ of the second-moment EMA.",
    "eps": "eps: $\\epsilon \\ge 0$ added to the denominator outside the square root\n"
    "  (``eps`` and ``eps_root`` may not both be 0).",
    "b2_inf": "b2: decay $\\beta_2 \\in [0, 1)$ of the infinity norm.",
    "eps_inf": "eps: $\\epsilon > 0$ added to $|g|$ in the infinity norm.",
    "eps_root": "eps_root: $\\epsilon_{root} \\ge 0$ added inside the square root (use a\n"
    "  positive value when differentiating through the optimizer).",
    "mu_dtype": "mu_dtype: dtype of the first-moment accumulator (None: the params' dtype).\n"
    "  ``jnp.bfloat16`` halves its memory; the math runs in the promoted dtype.",
    "nu_dtype": "nu_dtype: dtype of the second-moment accumulator (None: the params'\n"
    "  dtype).",
    "nesterov": "nesterov: use Nesterov's look-ahead form of the momentum.",
    "weight_decay": "weight_decay: decoupled weight decay $\\lambda \\ge 0$: adds\n"
    "  $\\lambda\\theta$ to the update before the learning rate scales it.",
    "mask": "mask: a pytree of booleans like the params (True: apply weight decay), or a\n"
    "  function ``params -> mask``. None applies it everywhere.",
    "momentum": "momentum: heavy-ball coefficient $\\beta \\in [0, 1)$, or None for none.",
    "accumulator_dtype": "accumulator_dtype: dtype of the momentum buffer (None: the params').",
    "hyper": "Every numeric argument accepts a float, a JAX array or a schedule, and is a\n"
    "pytree leaf of the returned transformation: ``jax.jit`` does not recompile when\n"
    "it changes and ``jax.vmap`` maps over a batch of them.",
    "returns_tx": "A :class:`~gradtx.GradientTransformation` (a pytree).",
}


def fill(fn: F) -> F:
    """Substitutes shared fragments into ``fn.__doc__`` (indented to match)."""
    doc = fn.__doc__ or ""

    def indent_for(key: str) -> str:
        for line in doc.splitlines():
            if "{" + key + "}" in line:
                return line[: len(line) - len(line.lstrip())]
        return ""

    for key, text in _FRAGMENTS.items():
        doc = doc.replace("{" + key + "}", textwrap.indent(text, indent_for(key)).lstrip())
    fn.__doc__ = doc
    return fn
