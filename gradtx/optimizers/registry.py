"""The registry: every optimizer with its capabilities, in one place.

The contract tests, the CLI and (later) the sweep runner all iterate over
:data:`OPTIMIZERS`; adding an optimizer means adding one entry here.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

from gradtx.core.base import GradientTransformation
from gradtx.optimizers.adam_family import adam, adamax, adamaxw, adamw, amsgrad, nadam, nadamw
from gradtx.optimizers.adam_like import (
    adabelief, adan, novograd, optimistic_adam, optimistic_adam_v2, optimistic_gradient_descent, radam, yogi,
)
from gradtx.optimizers.delta_bar_delta import delta_bar_delta
from gradtx.optimizers.classic import adadelta, adagrad, rmsprop, sgd
from gradtx.optimizers.noisy import noisy_sgd
from gradtx.optimizers.sign import lion, sign_sgd, signum
from gradtx.optimizers.quasi_newton import lbfgs
from gradtx.optimizers.muon import muon
from gradtx.optimizers.adam_contrib import acprop, ademamix, adopt, madgrad, simplified_ademamix
from gradtx.optimizers.parameter_free import cocob, dadapt_adamw, dog, dowg, prodigy
from gradtx.optimizers.schedule_free import schedule_free_adamw, schedule_free_sgd
from gradtx.optimizers.step_size import fromage, polyak_sgd, rprop
from gradtx.schedules.decay import exponential_decay
from gradtx.optimizers.factored import adafactor, sm3
from gradtx.optimizers.trust_ratio import lamb, lars

__all__ = ["OptimizerInfo", "OPTIMIZERS"]

EXTRA_ARGS = ("value", "grad", "value_fn")


@dataclasses.dataclass(frozen=True)
class OptimizerInfo:
    """An optimizer and what it can do.

    Attributes:
      name: registry key (the factory's name, or factory + variant).
      factory: the ``gx`` function that builds it.
      defaults: keyword arguments under which it reaches loss <= 1e-3 from the
        standard starts of both a kappa = 10 quadratic and Rosenbrock within
        10,000 steps (the contract tests check this); merged under the caller's.
      optax_name: the optax function with the same numerics, if any.
      complex_ok: works with complex parameters.
      needs_params: ``update`` needs ``params`` (weight decay).
      swept: the hyperparameter a sweep varies by default.
      extra_args: the keyword arguments ``update`` needs besides
        ``(updates, state, params)``, among ``"value"`` (the loss at
        ``params``), ``"grad"`` (its gradient) and ``"value_fn"`` (the loss
        function); :meth:`update_kwargs` picks them.
    """

    name: str
    factory: Callable[..., GradientTransformation]
    defaults: Mapping[str, Any]
    optax_name: str | None
    complex_ok: bool = True
    needs_params: bool = False
    swept: str = "learning_rate"
    extra_args: tuple[str, ...] = ()

    def __post_init__(self):
        unknown = set(self.extra_args) - set(EXTRA_ARGS)
        if unknown:
            raise ValueError(f"OptimizerInfo({self.name!r}): unknown extra_args {sorted(unknown)}; choose from {EXTRA_ARGS}.")

    def update_kwargs(self, *, value: Any = None, grad: Any = None, value_fn: Any = None) -> dict[str, Any]:
        """The extra keyword arguments this optimizer's ``update`` takes, from those offered.

        >>> import gradtx as gx
        >>> sorted(gx.OPTIMIZERS["lbfgs"].update_kwargs(value=1.0, grad=2.0, value_fn=abs))
        ['grad', 'value', 'value_fn']
        >>> gx.OPTIMIZERS["adam"].update_kwargs(value=1.0)
        {}
        """
        offered = {"value": value, "grad": grad, "value_fn": value_fn}
        missing = [n for n in self.extra_args if offered[n] is None]
        if missing:
            raise ValueError(f"{self.name}: `update` needs {', '.join(missing)}; pass them to update_kwargs.")
        return {n: offered[n] for n in self.extra_args}

    def make(self, **overrides: Any) -> GradientTransformation:
        """Builds the optimizer from ``defaults`` updated with ``overrides``."""
        return self.factory(**{**self.defaults, **overrides})

    def space(self, **dims: Any) -> Any:
        """A :class:`~gradtx.Space` over this optimizer: ``defaults`` with ``dims`` swept.

        >>> import gradtx as gx
        >>> gx.OPTIMIZERS["sgd_momentum"].space(learning_rate=gx.log_uniform(1e-3, 1)).dims
        {'learning_rate': log_uniform(0.001, 1)}
        """
        from gradtx.sweeps.space import Space

        return Space(self.factory, **{**self.defaults, **dims})


def _entries() -> list[OptimizerInfo]:
    E = OptimizerInfo
    return [
        E("sgd", sgd, {"learning_rate": 0.001}, "sgd"),
        E("sgd_momentum", sgd, {"learning_rate": 0.003, "momentum": 0.9}, "sgd"),
        E("sgd_nesterov", sgd, {"learning_rate": 0.001, "momentum": 0.9, "nesterov": True}, "sgd"),
        E("adagrad", adagrad, {"learning_rate": 1.0}, "adagrad"),
        E("rmsprop", rmsprop, {"learning_rate": 0.001}, "rmsprop"),
        E("rmsprop_centered", rmsprop, {"learning_rate": 0.01, "centered": True, "momentum": 0.5}, "rmsprop"),
        E("adadelta", adadelta, {"learning_rate": 0.03}, "adadelta", complex_ok=False, needs_params=True),
        E("adam", adam, {"learning_rate": 0.1}, "adam"),
        E("adamw", adamw, {"learning_rate": 0.1, "weight_decay": 1e-4}, "adamw", needs_params=True),
        E("nadam", nadam, {"learning_rate": 0.1}, "nadam"),
        E("nadamw", nadamw, {"learning_rate": 0.1, "weight_decay": 1e-4}, "nadamw", needs_params=True),
        E("adamax", adamax, {"learning_rate": 0.3}, "adamax", complex_ok=False),
        E("adamaxw", adamaxw, {"learning_rate": 0.3, "weight_decay": 1e-4}, "adamaxw", complex_ok=False, needs_params=True),
        E("amsgrad", amsgrad, {"learning_rate": 0.3}, "amsgrad"),
        E("adabelief", adabelief, {"learning_rate": 0.1}, "adabelief"),
        E("yogi", yogi, {"learning_rate": 0.1}, "yogi"),
        E("radam", radam, {"learning_rate": 0.005}, "radam"),
        E("adan", adan, {"learning_rate": 0.1}, "adan", needs_params=True),
        E("novograd", novograd, {"learning_rate": 0.001}, "novograd", needs_params=True),
        E("optimistic_gradient_descent", optimistic_gradient_descent, {"learning_rate": 0.001, "beta": 0.3},
          "optimistic_gradient_descent"),
        E("optimistic_adam", optimistic_adam, {"learning_rate": 0.03}, "optimistic_adam"),
        E("optimistic_adam_v2", optimistic_adam_v2, {"learning_rate": 0.03}, "optimistic_adam_v2"),
        E("lamb", lamb, {"learning_rate": 0.005}, "lamb", needs_params=True),
        E("lars", lars, {"learning_rate": 0.01, "trust_coefficient": 1.0}, "lars", needs_params=True),
        E("lion", lion, {"learning_rate": 0.001}, "lion", complex_ok=False, needs_params=True),
        # Constant-size sign steps zig-zag in Rosenbrock's valley: a decaying rate settles them
        # (float leaves only, so scaling every leaf of the optimizer keeps its dtypes).
        E("sign_sgd", sign_sgd, {"learning_rate": exponential_decay(0.01, 1000.0, 0.3, transition_begin=0.0)}, "sign_sgd", complex_ok=False),
        E("signum", signum, {"learning_rate": 0.001}, "signum", complex_ok=False),
        E("rprop", rprop, {"learning_rate": 0.01}, "rprop", complex_ok=False),
        E("fromage", fromage, {"learning_rate": 0.01}, "fromage", needs_params=True),
        E("noisy_sgd", noisy_sgd, {"learning_rate": 0.002}, "noisy_sgd"),
        E("adafactor", adafactor, {"learning_rate": 0.03, "momentum": 0.9}, "adafactor", complex_ok=False,
          needs_params=True),
        E("sm3", sm3, {"learning_rate": 1.0}, "sm3", complex_ok=False),
        E("polyak_sgd", polyak_sgd, {"max_learning_rate": 0.01}, "polyak_sgd", extra_args=("value",),
          swept="max_learning_rate"),
        # learning_rate=1.0 is the default step (None) as a leaf a sweep can vary.
        E("lbfgs", lbfgs, {"learning_rate": 1.0}, "lbfgs", extra_args=("value", "grad", "value_fn")),
        # The problems' 2-vectors go to muon's AdamW branch (Nesterov, as nadam); matrices to Muon.
        E("muon", muon, {"learning_rate": 0.1}, "contrib.muon", needs_params=True),
        # Measured at the training iterate y (what the contract tests see); evaluate at
        # gx.schedule_free_eval_params(state, params).
        E("schedule_free_sgd", schedule_free_sgd, {"learning_rate": 0.003}, "contrib.schedule_free_sgd", needs_params=True),
        E("schedule_free_adamw", schedule_free_adamw, {"learning_rate": 0.05}, "contrib.schedule_free_adamw",
          needs_params=True),
        E("adopt", adopt, {"learning_rate": 0.2}, "contrib.adopt"),
        E("ademamix", ademamix, {"learning_rate": 0.1}, "contrib.ademamix", needs_params=True),
        E("simplified_ademamix", simplified_ademamix, {"learning_rate": 0.001}, "contrib.simplified_ademamix",
          needs_params=True),
        E("madgrad", madgrad, {"learning_rate": 0.01}, "contrib.madgrad", needs_params=True),
        E("acprop", acprop, {"learning_rate": 0.01}, "contrib.acprop", needs_params=True),
        # Parameter-free: learning_rate multiplies the estimated step (1.0 by default). Larger
        # first estimates than optax's 1e-6 keep the contract's 20-step dtype runs well above
        # float32 rounding; optax's defaults converge too.
        E("prodigy", prodigy, {"estim_lr0": 1e-4}, "contrib.prodigy", needs_params=True),
        E("dadapt_adamw", dadapt_adamw, {"estim_lr0": 1e-4}, "contrib.dadapt_adamw", needs_params=True),
        E("dog", dog, {"init_step": ("heuristic", 1e-4)}, "contrib.dog", needs_params=True),
        E("dowg", dowg, {}, "contrib.dowg", needs_params=True),
        # COCOB's step ignores learning_rate (it enters only through eps): sweep alpha. It needs
        # 9,267 of the contract's 10,000 Rosenbrock steps at alpha = 4 (optax's 100: not within 10,000).
        E("cocob", cocob, {"alpha": 4.0}, "contrib.cocob", complex_ok=False, needs_params=True, swept="alpha"),
        E("delta_bar_delta", delta_bar_delta, {"learning_rate": 0.005, "kappa": 1e-3, "phi": 0.5}, None),
    ]


OPTIMIZERS: Mapping[str, OptimizerInfo] = {e.name: e for e in _entries()}
"""Every optimizer gradtx ships, keyed by name (see :class:`OptimizerInfo`)."""
