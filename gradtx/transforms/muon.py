"""Muon's primitives: Nesterov momentum orthogonalised by Newton–Schulz, and shape scaling.

:func:`scale_by_muon` and :func:`scale_by_shape` with optax.contrib's names,
signatures, defaults and numerics; the Newton–Schulz iteration itself is
:func:`~gradtx.orthogonalize_via_newton_schulz`. The optimizer, a partition of a
Muon chain and AdamW, is :func:`~gradtx.muon`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx.core import tree as gt
from gradtx.core.base import GradientTransformation, StatelessTransformation
from gradtx.core.docs import fill
from gradtx.core.hyperparams import ANY_REAL, NONNEGATIVE, UNIT_INTERVAL, Hyper, evaluate
from gradtx.core.module import hyper, static
from gradtx.core.numerics import safe_increment, zero_count
from gradtx.transforms.adam import debiased_first_moment
from gradtx.transforms.newton_schulz import (
    DEFAULT_NS_COEFFS,
    check_leaves,
    check_preconditioning,
    coefficient_array,
    coefficient_rows,
    fans,
    leaf_dimension_numbers,
    orthogonalize_leaf,
    static_dimension_numbers,
)

__all__ = ["MuonState", "ScaleByMuon", "ScaleByShape", "scale_by_muon", "scale_by_shape"]


class MuonState(NamedTuple):
    """State of :func:`scale_by_muon`.

    Attributes:
      count: updates so far (int32).
      mu: the momentum $m$, an EMA of the gradients (in ``mu_dtype``).

    optax.contrib's ``MuonState`` also holds ``ns_coeffs``, a copy of the
    Newton–Schulz coefficients made at ``init``. gradtx keeps them only as a
    hyperparameter leaf of the transformation, so a changed or vmapped
    coefficient array takes effect without a new ``init`` and the state holds
    nothing but what the updates change.
    """

    count: jax.Array
    mu: Any


class ScaleByMuon(GradientTransformation):
    r"""Muon's orthogonalised momentum (see :func:`scale_by_muon`)."""

    gx_name = "scale_by_muon"
    ns_coeffs: Hyper = hyper(DEFAULT_NS_COEFFS, ANY_REAL)  # one (3,) or (ns_steps, 3) array leaf
    beta: Hyper = hyper(0.95, UNIT_INTERVAL)
    eps: Hyper = hyper(1e-8, NONNEGATIVE)
    ns_steps: int = static(5)
    mu_dtype: Any = static(None)
    nesterov: bool = static(True)
    adaptive: bool = static(False)
    preconditioning: str = static("frobenius")
    weight_dimension_numbers: Any = static(None)  # None, dims, HashableTree of them, or a callable

    def __post_init__(self):
        where = f"gx.{self.gx_name}"
        # One array leaf (a tuple would be three leaves), its shape checked against ns_steps.
        object.__setattr__(self, "ns_coeffs", coefficient_array(self.ns_coeffs, self.ns_steps, where))
        super().__post_init__()
        check_preconditioning(self.preconditioning, where)
        dims = static_dimension_numbers(self.weight_dimension_numbers, where, "weight_dimension_numbers")
        object.__setattr__(self, "weight_dimension_numbers", dims)

    def init(self, params):
        # Every leaf a matrix or a batch of them: a bad leaf is named here, not at the first update.
        check_leaves(self.weight_dimension_numbers, params, f"gx.{self.gx_name}.init", "weight_dimension_numbers")
        return MuonState(zero_count(), gt.zeros_like(params, self.mu_dtype))

    def update(self, updates, state, params=None, **extra_args):
        where = f"gx.{self.gx_name}"
        h = evaluate(self, state.count)
        rows = coefficient_rows(h.ns_coeffs, self.ns_steps, where)
        # Shapes only: the dimension numbers are resolved on the updates (params may be absent).
        dims = leaf_dimension_numbers(self.weight_dimension_numbers, updates, where, "weight_dimension_numbers")
        mu = gt.update_moment(updates, state.mu, h.beta, 1)
        count = safe_increment(state.count)
        mu_hat = debiased_first_moment(mu, updates, h.beta, count, self.nesterov)
        leaves, treedef = jax.tree.flatten(mu_hat)
        out = [orthogonalize_leaf(m, d, rows, self.preconditioning, h.eps, where) for m, d in zip(leaves, dims)]
        if self.adaptive:  # scaled by the dual norm <mu_hat, O> (a real number, also for complex leaves)
            out = [gt.real_inner(m, o).astype(jnp.real(o).dtype) * o for m, o in zip(leaves, out)]
        return treedef.unflatten(out), MuonState(count, gt.cast_like(mu, state.mu))


@fill
def scale_by_muon(
    ns_coeffs: Any = DEFAULT_NS_COEFFS,
    ns_steps: int = 5,
    beta: Hyper = 0.95,
    eps: Hyper = 1e-8,
    mu_dtype: Any = None,
    *,
    nesterov: bool = True,
    adaptive: bool = False,
    preconditioning: str = "frobenius",
    weight_dimension_numbers: Any = None,
) -> ScaleByMuon:
    r"""Muon's scaling: Nesterov momentum, orthogonalised by Newton–Schulz.

    .. math::
        m_t = \beta m_{t-1} + (1-\beta) g_t, \qquad
        \hat m_t = \frac{\beta\, m_t}{1-\beta^{t+1}} + \frac{(1-\beta)\, g_t}{1-\beta^t}
        \quad(\text{or } m_t/(1-\beta^t) \text{ without } \texttt{nesterov}), \\
        u_t = \mathrm{NS}(\hat m_t) \approx U V^\top \ \text{ for } \hat m_t = U S V^\top,
        \qquad \text{with } \texttt{adaptive}: \ u_t = \langle \hat m_t, \mathrm{NS}(\hat m_t)\rangle\,
        \mathrm{NS}(\hat m_t),

    $\mathrm{NS}$ being :func:`~gradtx.orthogonalize_via_newton_schulz` (per
    matrix, ``ns_steps`` quintic steps with ``ns_coeffs`` after
    ``preconditioning``). $U V^\top$ is the steepest-descent direction under
    the spectral norm (Bernstein & Newhouse): every direction of the matrix
    moves by the same amount, however small its gradient's singular value.
    ``adaptive`` scales it by the dual norm $\langle \hat m, U V^\top\rangle
    = \sum_i \sigma_i$ (the nuclear norm; real also for complex leaves). The
    momentum and its debiasing are :func:`~gradtx.scale_by_adam`'s first
    moment with $\beta_1 = \beta$.

    Every leaf must be a matrix, or have dimension numbers that make it a
    batch of matrices; :func:`~gradtx.muon` sends the other leaves to AdamW.

    Args:
      ns_coeffs: the Newton–Schulz coefficients $(a, b, c)$ (default
        $(3.4445, -4.7750, 2.0315)$), a table of one row per step (shape
        (``ns_steps``, 3)) or a preset name (``'standard'``, ``'dion'``).
        One array leaf: a new array never recompiles, and ``jax.vmap`` over
        a batch of them is a sweep. (optax keeps them in the state; see
        :class:`MuonState`.)
      ns_steps: the number of Newton–Schulz steps (static int >= 1, default 5).
      beta: momentum decay $\beta \in [0, 1)$ (default 0.95).
      eps: $\epsilon \ge 0$ added to the norm of the pre-scaling (default 1e-8).
      {mu_dtype}
      nesterov: Nesterov's look-ahead momentum (default True).
      adaptive: scale by $\langle \hat m, \mathrm{NS}(\hat m)\rangle$ (default False).
      preconditioning: ``'frobenius'`` (default), ``'spectral'``, ``'aol'`` or
        ``'schatten'`` (see :func:`~gradtx.orthogonalize_via_newton_schulz`).
      weight_dimension_numbers: None (every leaf a matrix: reduction axis 0,
        output axis 1), one :class:`~gradtx.MuonDimensionNumbers` for every
        leaf, a pytree of them (a prefix of the params; a None entry means the
        default), or a function ``updates -> such a pytree``. Static. (optax
        accepts None only for a single-matrix params tree.)

    Returns:
      {returns_tx} State: :class:`MuonState`.

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> tx = gx.scale_by_muon()
      >>> g = {"w": jnp.array([[4.0, 0.0], [0.0, 0.1]], jnp.float32)}
      >>> u, state = tx.update(g, tx.init(g))
      >>> print(jnp.round(u["w"], 2))  # both directions of the matrix take a step near 1
      [[0.7  0.  ]
       [0.   0.93]]

    References:
      Jordan, *Muon: An optimizer for hidden layers in neural networks*
      (modded-nanogpt), 2024.
      Bernstein & Newhouse, *Old Optimizer, New Norm: An Anthology*,
      arXiv:2409.20325, 2024.
      Liu et al., *Muon is Scalable for LLM Training*, arXiv:2502.16982, 2025.
      Ahn et al., *Dion: Distributed Orthonormalized Updates*, arXiv:2504.05295, 2025.
      Amsel et al., *The Polar Express: Optimal Matrix Sign Methods and Their
      Application to the Muon Algorithm*, arXiv:2505.16932, 2025.
    """
    return ScaleByMuon(
        ns_coeffs, beta, eps, ns_steps, mu_dtype, nesterov, adaptive, preconditioning, weight_dimension_numbers
    )


class ScaleByShape(StatelessTransformation):
    r"""Scaling by a factor of each matrix's shape (see :func:`scale_by_shape`)."""

    gx_name = "scale_by_shape"
    consistent_rms: Hyper = hyper(None, NONNEGATIVE)
    weight_dimension_numbers: Any = static(None)

    def __post_init__(self):
        super().__post_init__()
        where = f"gx.{self.gx_name}"
        dims = static_dimension_numbers(self.weight_dimension_numbers, where, "weight_dimension_numbers")
        object.__setattr__(self, "weight_dimension_numbers", dims)

    def apply(self, updates, h, params):
        where = f"gx.{self.gx_name}"
        leaves, treedef = jax.tree.flatten(updates)
        dims = leaf_dimension_numbers(self.weight_dimension_numbers, updates, where, "weight_dimension_numbers")
        out = []
        for u, d in zip(leaves, dims):
            fan_in, fan_out = fans(jnp.shape(u), d, where)
            if h.consistent_rms is None:  # width scaling (Jordan)
                factor = jnp.sqrt(jnp.maximum(1, fan_out / fan_in))
            else:  # the RMS of an orthogonal matrix is 1/sqrt(max(fan_in, fan_out)) (Liu et al.)
                factor = jnp.sqrt(jnp.maximum(fan_in, fan_out)) * h.consistent_rms
            out.append(factor * u)
        return treedef.unflatten(out)


def scale_by_shape(weight_dimension_numbers: Any = None, consistent_rms: Hyper | None = None) -> ScaleByShape:
    r"""Scales each matrix's update by a factor of its shape: Muon's width or RMS scaling.

    For a leaf whose matrix is $n_{in} \times n_{out}$ (``fan_in`` = the size
    of its reduction axes, ``fan_out`` of its output axes):

    .. math::
        u \leftarrow \sqrt{\max(1,\ n_{out}/n_{in})}\; u
        \qquad\text{or, with } \texttt{consistent\_rms} = \rho: \qquad
        u \leftarrow \rho \sqrt{\max(n_{in}, n_{out})}\; u .

    The first is Jordan's width scaling (a wide layer's orthogonal update has
    small entries; this keeps its spectral norm per unit of input). The second
    (Liu et al.) makes the RMS of an orthogonalised update $\rho$ whatever the
    shape, since an orthogonal $n_{in}\times n_{out}$ matrix has RMS
    $1/\sqrt{\max(n_{in}, n_{out})}$; $\rho = 0.2$ matches AdamW's typical
    update RMS, so AdamW's learning rate and weight decay carry over.

    Args:
      weight_dimension_numbers: as in :func:`scale_by_muon` (None: every leaf
        a matrix with reduction axis 0 and output axis 1). Static.
      consistent_rms: $\rho \ge 0$ (a float, array or schedule: a leaf), or
        None (default) for width scaling.

    Returns:
      A :class:`~gradtx.GradientTransformation` (a pytree); stateless unless
      ``consistent_rms`` is a schedule. optax.contrib's
      ``_muon.scale_by_shape`` (not exported there).

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> u = {"wide": jnp.ones((2, 8), jnp.float32), "tall": jnp.ones((8, 2), jnp.float32)}
      >>> out, _ = gx.scale_by_shape().update(u, gx.EmptyState())
      >>> print(out["wide"][0, 0], out["tall"][0, 0])
      2.0 1.0

    References:
      Jordan, *Muon: An optimizer for hidden layers in neural networks*
      (modded-nanogpt), 2024.
      Liu et al., *Muon is Scalable for LLM Training*, arXiv:2502.16982, 2025.
    """
    return ScaleByShape(consistent_rms, weight_dimension_numbers)
