"""The registry: every optimizer with its capabilities, in one place.

The contract tests, the CLI and (later) the sweep runner all iterate over
:data:`OPTIMIZERS`; adding an optimizer means adding one entry here.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

from gradtx.core.base import GradientTransformation
from gradtx.optimizers.adam_family import adam, adamax, adamaxw, adamw, amsgrad, nadam, nadamw
from gradtx.optimizers.delta_bar_delta import delta_bar_delta
from gradtx.optimizers.classic import adadelta, adagrad, rmsprop, sgd

__all__ = ["OptimizerInfo", "OPTIMIZERS"]


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
    """

    name: str
    factory: Callable[..., GradientTransformation]
    defaults: Mapping[str, Any]
    optax_name: str | None
    complex_ok: bool = True
    needs_params: bool = False
    swept: str = "learning_rate"

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
        E("delta_bar_delta", delta_bar_delta, {"learning_rate": 0.005, "kappa": 1e-3, "phi": 0.5}, None),
    ]


OPTIMIZERS: Mapping[str, OptimizerInfo] = {e.name: e for e in _entries()}
"""Every optimizer gradtx ships, keyed by name (see :class:`OptimizerInfo`)."""
