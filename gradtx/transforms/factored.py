"""Sublinear-memory second moments: Adafactor's factored RMS and SM3's cover accumulators."""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx.core.base import GradientTransformation, next_count, schedule_count
from gradtx.core.hyperparams import NONNEGATIVE, NONNEGATIVE_INTEGER, UNIT_CLOSED, UNIT_INTERVAL, Hyper, evaluate
from gradtx.core.module import hyper, static
from gradtx.core.numerics import abs_sq, safe_increment, zero_count
from gradtx.core import tree as gt

__all__ = [
    "FactoredState",
    "ScaleBySM3State",
    "ScaleByFactoredRms",
    "ScaleBySM3",
    "decay_rate_pow",
    "scale_by_factored_rms",
    "scale_by_sm3",
]


class FactoredState(NamedTuple):
    """State of :func:`scale_by_factored_rms` (optax's field names).

    Attributes:
      count: updates so far (int32 scalar).
      v_row: per leaf, the row statistics of a factored leaf (its largest axis
        removed), else a 1-element placeholder.
      v_col: per leaf, the column statistics of a factored leaf (its second
        largest axis removed), else a 1-element placeholder.
      v: per leaf, the full second moment of an unfactored leaf, else a
        1-element placeholder.
    """

    count: jax.Array
    v_row: Any
    v_col: Any
    v: Any


def decay_rate_pow(i: jax.Array, exponent: Any = 0.8) -> jax.Array:
    r"""Adafactor's second-moment decay at step $i$ (0-based): $\hat\beta_2 = 1 - (i+1)^{-c}$.

    Computed in float32, as optax does. The decay rises from 0 at the first
    step towards 1, so early steps use mostly the current gradient.
    """
    t = jnp.asarray(i + 1).astype(jnp.float32)
    return 1.0 - t ** (-exponent)


def _factored_dims(shape: tuple, factored: bool, min_dim_size_to_factor: int) -> tuple[int, int] | None:
    """(second largest, largest) axis of ``shape``, or None when the leaf is not factored."""
    if not factored or len(shape) < 2:
        return None
    order = np.argsort(shape)
    if shape[order[-2]] < min_dim_size_to_factor:
        return None
    return int(order[-2]), int(order[-1])


def _zeros_without(p: jax.Array, axis: int) -> jax.Array:
    shape = tuple(n for i, n in enumerate(jnp.shape(p)) if i != axis)
    return jnp.zeros(shape, jnp.result_type(p))


class ScaleByFactoredRms(GradientTransformation):
    r"""Adafactor's factored second-moment scaling (see :func:`scale_by_factored_rms`)."""

    gx_name = "scale_by_factored_rms"
    factored: bool = static(True)
    decay_rate: Hyper = hyper(0.8, NONNEGATIVE)
    step_offset: Hyper = hyper(0, NONNEGATIVE_INTEGER)
    min_dim_size_to_factor: int = static(128)
    epsilon: Hyper = hyper(1e-30, NONNEGATIVE)
    decay_rate_fn: Callable[[Any, Any], Any] = static(decay_rate_pow)

    def _dims(self, p) -> tuple[int, int] | None:
        return _factored_dims(jnp.shape(p), self.factored, self.min_dim_size_to_factor)

    def init(self, params):
        def placeholder(p):
            return jnp.zeros((1,), jnp.result_type(p))

        def row(p):
            dims = self._dims(p)
            return placeholder(p) if dims is None else _zeros_without(p, dims[1])

        def col(p):
            dims = self._dims(p)
            return placeholder(p) if dims is None else _zeros_without(p, dims[0])

        def full(p):
            return placeholder(p) if self._dims(p) is not None else gt.zeros_like(p)

        m = gt.tree_map_none
        return FactoredState(zero_count(), m(row, params), m(col, params), m(full, params))

    def update(self, updates, state, params=None, **extra_args):
        h = evaluate(self, state.count)
        decay = self.decay_rate_fn(state.count - h.step_offset, h.decay_rate)
        leaves, treedef = jax.tree.flatten(updates)
        rows, cols, vs = (treedef.flatten_up_to(x) for x in (state.v_row, state.v_col, state.v))
        out = []
        for g, v_row, v_col, v in zip(leaves, rows, cols, vs):
            sq = abs_sq(g) + h.epsilon
            dims = self._dims(g)
            if dims is None:
                new_v = gt.cast_like(gt.update_moment(sq, v, decay, 1), v)
                out.append((g * new_v ** -0.5, v_row, v_col, new_v))
                continue
            d1, d0 = dims  # second largest, largest
            new_row = gt.cast_like(gt.update_moment(jnp.mean(sq, axis=d0), v_row, decay, 1), v_row)
            new_col = gt.cast_like(gt.update_moment(jnp.mean(sq, axis=d1), v_col, decay, 1), v_col)
            row_mean = jnp.mean(new_row, axis=d1 - 1 if d1 > d0 else d1, keepdims=True)
            row_factor = (new_row / row_mean) ** -0.5
            col_factor = new_col ** -0.5
            u = g * jnp.expand_dims(row_factor, d0) * jnp.expand_dims(col_factor, d1)
            out.append((u, new_row, new_col, v))
        new = [treedef.unflatten([o[k] for o in out]) for k in range(4)]
        return new[0], FactoredState(safe_increment(state.count), new[1], new[2], new[3])


def scale_by_factored_rms(
    factored: bool = True,
    decay_rate: Hyper = 0.8,
    step_offset: Hyper = 0,
    min_dim_size_to_factor: int = 128,
    epsilon: Hyper = 1e-30,
    decay_rate_fn: Callable[[Any, Any], Any] = decay_rate_pow,
) -> ScaleByFactoredRms:
    r"""Divides by a factored estimate of the gradients' RMS (Adafactor).

    With $\hat\beta_t$ = ``decay_rate_fn(t - step_offset, decay_rate)``
    (default $1 - (t+1)^{-c}$, :func:`decay_rate_pow`) and $G = g^2 + \epsilon_1$:
    for a leaf whose two largest axes (rows $i$, columns $j$; the largest is
    "columns") both have at least ``min_dim_size_to_factor`` entries,

    .. math::
        R_t = \hat\beta_t R_{t-1} + (1-\hat\beta_t)\,\mathrm{mean}_j\, G, \quad
        C_t = \hat\beta_t C_{t-1} + (1-\hat\beta_t)\,\mathrm{mean}_i\, G, \quad
        u_{ij} = g_{ij} \Big/ \sqrt{\frac{R_{t,i}}{\mathrm{mean}_i R_{t,i}}\, C_{t,j}}

    (the rank-1 estimate $\hat V = R C^\top/\mathrm{mean}(R)$ of the second
    moment); other leaves keep a full $V_t = \hat\beta_t V_{t-1} +
    (1-\hat\beta_t) G$ and get $u = g/\sqrt{V_t}$.

    Memory: an $n \times m$ factored matrix stores $n + m$ numbers
    ($O(n+m)$, not $O(nm)$), plus a 1-element placeholder where optax keeps
    one; a rank-$k$ leaf stores its size divided by one of its two largest
    axes, twice. State: :class:`FactoredState` (optax's field names).

    Args:
      factored: factor the second moment of rank >= 2 leaves.
      decay_rate: $c \ge 0$, the exponent of the default decay schedule.
      step_offset: integer $\ge 0$ subtracted from the step count (fine-tuning
        from a checkpoint's step).
      min_dim_size_to_factor: factor only if the two largest axes have at
        least this many entries (static).
      epsilon: $\epsilon_1 \ge 0$ added to the squared gradient.
      decay_rate_fn: ``(step, decay_rate) -> decay`` (static), e.g. a capped
        schedule (Zhai et al., 2021).

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> tx = gx.scale_by_factored_rms(min_dim_size_to_factor=2)
      >>> params = jnp.zeros((3, 4), jnp.float32)
      >>> state = tx.init(params)
      >>> state.v_row.shape, state.v_col.shape, state.v.shape  # 3 + 4 numbers
      ((3,), (4,), (1,))
      >>> u, state = tx.update(jnp.full((3, 4), 2.0, jnp.float32), state, params)
      >>> float(u[0, 0])
      1.0

    References:
      Shazeer & Stern, *Adafactor: Adaptive Learning Rates with Sublinear Memory
      Cost*, ICML 2018. Zhai et al., *Scaling Vision Transformers*, 2021.
    """
    return ScaleByFactoredRms(factored, decay_rate, step_offset, min_dim_size_to_factor, epsilon, decay_rate_fn)


class ScaleBySM3State(NamedTuple):
    """State of :func:`scale_by_sm3` (optax's field names).

    Attributes:
      mu: per leaf, a list with one accumulator per axis (a vector of that axis'
        length); a scalar leaf keeps one scalar.
      nu: EMA of the scaled updates (the momentum), like the params.
      count: updates so far, only when a hyperparameter is a schedule (else None).
    """

    mu: Any
    nu: Any
    count: jax.Array | None = None


def _expanded(v: jax.Array, ndim: int, axis: int) -> jax.Array:
    return v.reshape((1,) * axis + v.shape + (1,) * (ndim - axis - 1))


class ScaleBySM3(GradientTransformation):
    r"""SM3 scaling (see :func:`scale_by_sm3`)."""

    gx_name = "scale_by_sm3"
    b1: Hyper = hyper(0.9, UNIT_INTERVAL)
    b2: Hyper = hyper(1.0, UNIT_CLOSED)
    eps: Hyper = hyper(1e-8, NONNEGATIVE)

    def init(self, params):
        for x in jax.tree.leaves(params):
            if jnp.iscomplexobj(x):
                raise TypeError("gx.scale_by_sm3: complex parameters are not supported (SM3 compares magnitudes).")

        def covers(p):
            if jnp.ndim(p) == 0:
                return [gt.zeros_like(p)]
            return [jnp.zeros((n,), jnp.result_type(p)) for n in jnp.shape(p)]

        return ScaleBySM3State(gt.tree_map_none(covers, params), gt.zeros_like(params), schedule_count(self))

    def update(self, updates, state, params=None, **extra_args):
        h = evaluate(self, state.count)
        # Plain sum of squares when b2 = 1 (SM3 as published), else an EMA with weight 1 - b2.
        new_weight = jnp.where(h.b2 == 1, jnp.ones_like(h.b2), 1 - h.b2)
        leaves, treedef = jax.tree.flatten(updates)
        covers = treedef.flatten_up_to(state.mu)
        accums, new_mu = [], []
        for g, cover in zip(leaves, covers):
            nd = g.ndim
            if nd < 2:
                prev = cover[0]
            else:
                prev = functools.reduce(jnp.minimum, [_expanded(v, nd, i) for i, v in enumerate(cover)])
            a = new_weight * g**2 + h.b2 * prev
            accums.append(a)
            if nd < 2:
                new_mu.append([a])
            else:
                new_mu.append([jnp.max(a, axis=tuple(j for j in range(nd) if j != i)) for i in range(nd)])
        scaled = [g * jnp.where(a > 0, jax.lax.rsqrt(a + h.eps), 0.0) for g, a in zip(leaves, accums)]
        nu = gt.update_moment(treedef.unflatten(scaled), state.nu, h.b1, 1)
        mu = gt.cast_like(treedef.unflatten(new_mu), state.mu)
        return nu, ScaleBySM3State(mu, gt.cast_like(nu, state.nu), next_count(state.count))


def scale_by_sm3(b1: Hyper = 0.9, b2: Hyper = 1.0, eps: Hyper = 1e-8) -> ScaleBySM3:
    r"""SM3 scaling: AdaGrad-like steps from one accumulator per tensor axis.

    For a leaf of rank $k \ge 2$ with one cover vector $\mu^{(r)}$ per axis $r$,

    .. math::
        \nu_t(i) = (1-\beta_2)' g_t(i)^2 + \beta_2 \min_r \mu^{(r)}_{t-1}(i_r), \quad
        \mu^{(r)}_t(j) = \max_{i:\, i_r = j} \nu_t(i), \quad
        u_t = \text{EMA}_{\beta_1}\!\big(g_t/\sqrt{\nu_t + \epsilon}\big)

    ($0$ where $\nu_t = 0$; $(1-\beta_2)' = 1$ when $\beta_2 = 1$, SM3-II's sum
    of squares, else $1-\beta_2$). Vectors and scalars keep $\nu$ itself. An
    $n\times m$ matrix stores $n + m$ accumulators, not $nm$.

    Better than optax: scalar leaves work (one scalar accumulator; optax's
    ``scale_by_sm3`` fails on them), and $\beta_2$ may be traced or swept (optax
    branches on its Python value).

    Args:
      b1: $\beta_1 \in [0, 1)$, decay of the EMA of scaled updates (momentum).
      b2: $\beta_2 \in [0, 1]$, decay of the accumulators (1: plain sums).
      eps: $\epsilon \ge 0$ added inside the square root.

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> tx = gx.scale_by_sm3(b1=0.0)
      >>> state = tx.init(jnp.zeros((2, 3), jnp.float32))
      >>> [m.shape for m in state.mu]  # 2 + 3 accumulators
      [(2,), (3,)]
      >>> u, state = tx.update(jnp.full((2, 3), 2.0, jnp.float32), state)
      >>> float(u[0, 0])
      1.0

    References:
      Anil, Gupta, Koren & Singer, *Memory-Efficient Adaptive Optimization*,
      NeurIPS 2019.
    """
    return ScaleBySM3(b1, b2, eps)
