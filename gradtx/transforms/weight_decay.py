"""Decoupled weight decay: ``add_decayed_weights``."""

from __future__ import annotations

from typing import Any

from gradtx.core.base import NO_PARAMS_MSG, GradientTransformation, StatelessTransformation
from gradtx.core.docs import fill
from gradtx.core.hyperparams import NONNEGATIVE, Hyper
from gradtx.core.module import hyper
from gradtx.core import tree as gt
from gradtx.wrappers.masked import masked

__all__ = ["AddDecayedWeights", "add_decayed_weights"]


class AddDecayedWeights(StatelessTransformation):
    gx_name = "add_decayed_weights"
    weight_decay: Hyper = hyper(0.0, NONNEGATIVE)

    def apply(self, updates, h, params):
        if params is None:
            raise ValueError(f"gx.add_decayed_weights: {NO_PARAMS_MSG}")
        return gt.tree_map_none(lambda g, p: g + h.weight_decay * p, updates, params)


@fill
def add_decayed_weights(weight_decay: Hyper = 0.0, mask: Any = None) -> GradientTransformation:
    r"""Adds $\lambda\,\theta$ to the updates (decoupled weight decay).

    .. math:: u \leftarrow g + \lambda\,\theta

    Placed after an adaptive scaling and before the learning rate this is
    AdamW's decoupled decay; placed first it is classic $\ell_2$
    regularisation (the gradient of $\tfrac{\lambda}{2}\lVert\theta\rVert^2$):
    with $\lambda = 2\lambda_{seed}$ it is seed 001's shrinkage for the penalty
    $\lambda_{seed}\lVert w\rVert^2$, $w \leftarrow w(1-2\eta\lambda_{seed}) - \eta\nabla\ell$.

    Args:
      {weight_decay}
      {mask}

    References:
      Loshchilov & Hutter, *Decoupled Weight Decay Regularization*, ICLR 2019.
    """
    tx = AddDecayedWeights(weight_decay)
    return tx if mask is None else masked(tx, mask)
