"""optax.contrib's Adam relatives: ADOPT, AdEMAMix and simplified AdEMAMix.

Same names, signatures, defaults, state layouts and numerics as
``optax.contrib``; every numeric argument (including ADOPT's clipping
threshold and AdEMAMix's ``alpha`` and ``b3``, which optax lets be schedules)
is a pytree leaf. AdEMAMix and its simplified form divide with
:func:`~gradtx.transforms.adam.adam_direction`, Adam's overflow-guarded
division; ADOPT normalises by the *previous* second moment with its own
guard. MADGRAD and ACProp are in :mod:`gradtx.transforms.adam_contrib_extra`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx.core.base import GradientTransformation
from gradtx.core.docs import fill
from gradtx.core.hyperparams import ANY_REAL, NONNEGATIVE, POSITIVE, UNIT_INTERVAL, Hyper, Schedule, evaluate
from gradtx.core.module import hyper, static
from gradtx.core.numerics import safe_increment, zero_count
from gradtx.core import tree as gt
from gradtx.schedules._precision import own_precision, precision_doc
from gradtx.transforms.adam import ScaleByAdamState, _as_computed, _check_eps, adam_direction

__all__ = [
    "PowerOfCount",
    "ScaleByAdemamixState",
    "ScaleBySimplifiedAdEMAMixState",
    "ScaleByAdopt",
    "ScaleByAdemamix",
    "ScaleBySimplifiedAdemamix",
    "scale_by_adopt",
    "scale_by_ademamix",
    "scale_by_simplified_ademamix",
]


class PowerOfCount(Schedule):
    r"""The schedule $n \mapsto n^p$ of the step count $n$: ADOPT's default clipping threshold.

    ``PowerOfCount(0.25)`` is optax's ``lambda x: x**0.25``, with $p$ a leaf
    (a sweep over it never recompiles). $0^p = 0$ for $p > 0$.

    {precision}

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> [round(float(c), 4) for c in gx.PowerOfCount(0.25)(jnp.arange(4))]
      [0.0, 1.0, 1.1892, 1.3161]
    """

    gx_name = "PowerOfCount"
    power: Hyper = hyper(0.25, ANY_REAL)

    @own_precision
    def __call__(self, count: jax.Array) -> jax.Array:
        return count**self.power


precision_doc(PowerOfCount)


def _clip(x: jax.Array, c: jax.Array) -> jax.Array:
    """$x$ clipped to $[-c, c]$; a complex $x$ has its modulus clipped (its phase kept)."""
    if not jnp.iscomplexobj(x):
        return jnp.clip(x, -c, c)
    r = jnp.abs(x)
    c = gt.cast(c, r.dtype)
    return x * jnp.where(r > c, c / jnp.where(r > c, r, 1), 1).astype(x.dtype)


def _normalise(g: Any, nu: Any, eps: Any) -> Any:
    r"""ADOPT's $g / \max(\sqrt{v}, \epsilon)$ (``nu``: the stored, saturated $v_{t-1}$), overflow-safe.

    Where $v$ is below the dtype's largest value this is exactly optax's
    arithmetic; where it saturated (a $|g|^2$ overflowed) the root is
    replaced by $|g|$, so the normalised gradient is $\mathrm{sign}(g)$, the
    value of a first step of Adam (``inf`` there made optax's 0 for ever).
    """
    eps = gt.scalar_for(eps)

    def one(g, v):
        v = jnp.real(v)
        root = jnp.sqrt(v)
        denom = jax.lax.select(v < jnp.finfo(v.dtype).max, root, gt.cast(jnp.abs(g), root.dtype))
        return g / jnp.maximum(denom, eps(denom))

    return gt.tree_map_none(one, g, nu)


class ScaleByAdopt(GradientTransformation):
    r"""ADOPT's scaling (see :func:`scale_by_adopt`)."""

    gx_name = "scale_by_adopt"
    b1: Hyper = hyper(0.9, UNIT_INTERVAL)
    b2: Hyper = hyper(0.9999, UNIT_INTERVAL)
    eps: Hyper = hyper(1e-6, POSITIVE)
    clip_value_fn: Hyper = hyper(None, NONNEGATIVE)  # None: PowerOfCount(0.25)
    mu_dtype: Any = static(None)
    nesterov: bool = static(False)
    use_clipping: bool = static(True)

    def __post_init__(self):
        if self.clip_value_fn is None:  # built here, not at import: its leaf follows the x64 mode of now
            object.__setattr__(self, "clip_value_fn", PowerOfCount(0.25))
        super().__post_init__()

    def init(self, params):
        return ScaleByAdamState(zero_count(), gt.zeros_like(params, self.mu_dtype), gt.zeros_like(params))

    def update(self, updates, state, params=None, **extra_args):
        h = evaluate(self, state.count)
        later = state.count > 0
        b1 = jnp.where(later, h.b1, 1)  # the first step only fills v: m keeps its value
        b2 = jnp.where(later, h.b2, 0)  # ... and v_1 = |g_1|^2
        nu = gt.saturate_like(gt.update_moment_per_elem_norm(updates, state.nu, b2, 2), state.nu)
        step = _normalise(updates, state.nu, h.eps)
        if self.use_clipping:
            step = gt.tree_map_none(lambda x: _clip(x, h.clip_value_fn), step)
        # Weighted by 1 - b1 = 0 on the first step: 0 there, so that g / eps overflowing is no 0 * inf.
        step = gt.tree_map_none(lambda x: jnp.where(later, x, jnp.zeros_like(x)), step)
        mu = _as_computed(gt.cast_like(gt.update_moment(step, state.mu, b1, 1), state.mu), updates)
        out = gt.update_moment(step, mu, b1, 1) if self.nesterov else mu
        return out, ScaleByAdamState(safe_increment(state.count), gt.cast_like(mu, state.mu), nu)


@fill
def scale_by_adopt(
    b1: Hyper = 0.9,
    b2: Hyper = 0.9999,
    eps: Hyper = 1e-6,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
    use_clipping: bool = True,
    clip_value_fn: Hyper | None = None,
) -> ScaleByAdopt:
    r"""Rescales updates by ADOPT: Adam's moments in the other order, normalised by the *previous* $v$.

    .. math::
        v_1 = |g_1|^2, \quad m_1 = 0; \qquad \text{for } t > 1:\\
        x_t = \mathrm{clip}\!\left(\frac{g_t}{\max(\sqrt{v_{t-1}}, \epsilon)}, c_{t-1}\right), \quad
        m_t = \beta_1 m_{t-1} + (1-\beta_1) x_t, \quad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) |g_t|^2, \quad u_t = m_t

    where $c_n$ is ``clip_value_fn(n)`` ($n = t-1$ updates so far;
    by default $n^{1/4}$) and $\mathrm{clip}(x, c) = \min(\max(x, -c), c)$
    (for complex $x$ the modulus is clipped, the phase kept; optax raises). With
    ``nesterov=True`` the update is $\beta_1 m_t + (1-\beta_1) x_t$. The first
    update is 0: it only measures $v_1$. Normalising $g_t$ by $v_{t-1}$,
    which does not contain $g_t$, is what lets ADOPT converge for any
    $\beta_2$ (Adam needs $\beta_2$ large enough for the problem).

    ADOPT's division is not Adam's ($\max(\sqrt v, \epsilon)$, by the
    previous $v$) but it is guarded the same way: $v_t$ is stored saturated at
    the dtype's largest value where $|g_t|^2$ overflows (optax stores ``inf``,
    and every later step of that coordinate is then 0), and where $v_{t-1}$
    saturated the normalised gradient is $\mathrm{sign}(g_t)$, then clipped
    and averaged as usual. Elsewhere the arithmetic is exactly optax's; the
    first update is exactly 0 even where $g_1/\epsilon$ overflows (optax's is
    NaN there without clipping, $0 \cdot \infty$).

    Args:
      {b1}
      b2: decay rate $\beta_2 \in [0, 1)$ of the second-moment EMA (any value
        converges in theory; the default is $0.9999$).
      eps: $\epsilon > 0$, the least value of $\sqrt{v}$ the gradient is divided by.
      mu_dtype: dtype of the first-moment accumulator (None: the params'
        dtype). The update is the stored $m_t$ (promoted back), as in
        :func:`scale_by_adam`.
      {nesterov}
      use_clipping: clip the normalised gradient to $[-c_{t-1}, c_{t-1}]$
        (recommended, especially when training from scratch).
      clip_value_fn: $c_n \ge 0$: a float, an array or a schedule of the count
        $n$. None (the default) is :class:`PowerOfCount` ``(0.25)``, $n^{1/4}$:
        optax's default ``lambda x: x**0.25`` with its exponent a leaf. Used
        only with ``use_clipping``.

    Returns:
      {returns_tx} State: :class:`~gradtx.ScaleByAdamState` (optax's).

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> tx = gx.scale_by_adopt(b1=0.5)
      >>> g = jnp.array([1.0, -2.0], jnp.float32)
      >>> u, state = tx.update(g, tx.init(g))
      >>> print(u)  # the first step only fills v = g^2
      [0. 0.]
      >>> u, state = tx.update(jnp.array([0.5, 4.0], jnp.float32), state)
      >>> print(u)  # (1 - b1) clip(g_2 / |g_1|, 1)
      [0.25 0.5 ]

    References:
      Taniguchi et al., *ADOPT: Modified Adam Can Converge with Any $\beta_2$
      with the Optimal Rate*, NeurIPS 2024 (arXiv:2411.02853).
    """
    return ScaleByAdopt(b1, b2, eps, clip_value_fn, mu_dtype, nesterov, use_clipping)


class ScaleByAdemamixState(NamedTuple):
    """State of :func:`scale_by_ademamix` (optax.contrib's fields).

    Attributes:
      count: updates so far (int32), for the fast EMA and the second moment.
      count_m2: updates so far (int32), for the slow EMA and the schedules of
        ``b3`` and ``alpha`` (always equal to ``count``; kept as optax has it).
      m1: fast EMA of the gradients.
      m2: slow EMA of the gradients.
      nu: EMA of the squared gradients.
    """

    count: jax.Array
    count_m2: jax.Array
    m1: Any
    m2: Any
    nu: Any


class ScaleByAdemamix(GradientTransformation):
    r"""AdEMAMix's scaling (see :func:`scale_by_ademamix`)."""

    gx_name = "scale_by_ademamix"
    b1: Hyper = hyper(0.9, UNIT_INTERVAL)
    b2: Hyper = hyper(0.999, UNIT_INTERVAL)
    b3: Hyper = hyper(0.9999, UNIT_INTERVAL)
    alpha: Hyper = hyper(6.0, NONNEGATIVE)
    eps: Hyper = hyper(1e-8, NONNEGATIVE)
    eps_root: Hyper = hyper(0.0, NONNEGATIVE)
    mu_dtype: Any = static(None)

    def __post_init__(self):
        super().__post_init__()
        _check_eps(self)

    def init(self, params):
        m1, m2, nu = (gt.zeros_like(params, self.mu_dtype) for _ in range(3))  # three buffers: each may be donated
        return ScaleByAdemamixState(zero_count(), zero_count(), m1, m2, nu)

    def update(self, updates, state, params=None, **extra_args):
        h = evaluate(self, state.count_m2)  # optax evaluates b3 and alpha at count_m2
        m1 = _as_computed(gt.cast_like(gt.update_moment(updates, state.m1, h.b1, 1), state.m1), updates)
        m2 = _as_computed(gt.cast_like(gt.update_moment(updates, state.m2, h.b3, 1), state.m2), updates)
        nu = gt.saturate_like(gt.update_moment_per_elem_norm(updates, state.nu, h.b2, 2), state.nu)
        count = safe_increment(state.count)
        m1_hat = gt.bias_correction(m1, h.b1, count)
        nu_hat = gt.bias_correction(_as_computed(nu, m1_hat), h.b2, count)  # stored: no copy of the old
        alpha = gt.scalar_for(h.alpha)
        mix = gt.tree_map_none(lambda a, b: a + alpha(b) * b, m1_hat, m2)
        out = adam_direction(mix, nu, nu_hat, h.eps, h.eps_root)
        cast = gt.cast_like
        new = ScaleByAdemamixState(count, safe_increment(state.count_m2), cast(m1, state.m1), cast(m2, state.m2), nu)
        return out, new


@fill
def scale_by_ademamix(
    b1: Hyper = 0.9,
    b2: Hyper = 0.999,
    b3: Hyper = 0.9999,
    alpha: Hyper = 6.0,
    eps: Hyper = 1e-8,
    eps_root: Hyper = 0.0,
    mu_dtype: Any = None,
) -> ScaleByAdemamix:
    r"""Rescales updates by AdEMAMix: Adam's step plus $\alpha$ times a slow EMA of the gradients.

    .. math::
        m^{(1)}_t = \beta_1 m^{(1)}_{t-1} + (1-\beta_1) g_t, \quad
        m^{(2)}_t = \beta_3 m^{(2)}_{t-1} + (1-\beta_3) g_t, \quad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) |g_t|^2, \\
        u_t = \frac{m^{(1)}_t/(1-\beta_1^t) + \alpha\, m^{(2)}_t}
        {\sqrt{v_t/(1-\beta_2^t) + \epsilon_{root}} + \epsilon}

    The slow EMA $m^{(2)}$ is not debiased, so it fills slowly: with
    $\beta_3 = 0.9999$ it remembers about $10^4$ steps of gradients. The
    paper warms $\alpha$ and $\beta_3$ up; both (like every argument) may be
    schedules, evaluated at ``count_m2``. With $\alpha = 0$ this is
    :func:`~gradtx.scale_by_adam`.

    The division is :func:`~gradtx.scale_by_adam`'s (overflow-guarded): where
    $|g_t|^2$ overflows the dtype, $v_t$ is stored saturated and the update is
    the unit step along the numerator, $\pm 1$ (optax's is 0, and ``inf`` in
    its state freezes that coordinate). Elsewhere the arithmetic is exactly
    optax's. Unlike optax's, the state keeps the dtypes ``init`` gave it
    (optax's ``m1``, ``m2`` and ``nu`` take the promoted dtype after a step
    when ``mu_dtype`` is set).

    Args:
      {b1}
      {b2}
      b3: decay rate $\beta_3 \in [0, 1)$ of the slow EMA.
      alpha: $\alpha \ge 0$, the weight of the slow EMA (default 6 here, 5 in
        :func:`~gradtx.ademamix`, as in optax).
      {eps}
      {eps_root}
      mu_dtype: dtype of the three accumulators ``m1``, ``m2`` and ``nu``
        (None: the params' dtype), as optax's ``init`` gives them.

    Returns:
      {returns_tx} State: :class:`ScaleByAdemamixState`.

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> tx = gx.scale_by_ademamix(b3=0.9, alpha=5.0)
      >>> g = jnp.array([1.0, -2.0], jnp.float32)
      >>> u, state = tx.update(g, tx.init(g))
      >>> print(jnp.round(u, 4))  # sign(g) (1 + alpha (1 - b3))
      [ 1.5 -1.5]

    References:
      Pagliardini, Ablin & Grangier, *The AdEMAMix Optimizer: Better, Faster,
      Older*, ICLR 2025 (arXiv:2409.03137).
    """
    return ScaleByAdemamix(b1, b2, b3, alpha, eps, eps_root, mu_dtype)


class ScaleBySimplifiedAdEMAMixState(NamedTuple):
    """State of :func:`scale_by_simplified_ademamix` (optax.contrib's fields).

    Attributes:
      t: updates so far (int32).
      m: the momentum sum $m_t = \\beta_1 m_{t-1} + g_t$.
      n: EMA of the squared gradients.
    """

    t: jax.Array
    m: Any
    n: Any


class ScaleBySimplifiedAdemamix(GradientTransformation):
    r"""Simplified AdEMAMix's scaling (see :func:`scale_by_simplified_ademamix`)."""

    gx_name = "scale_by_simplified_ademamix"
    b1: Hyper = hyper(0.99, UNIT_INTERVAL)
    b2: Hyper = hyper(0.95, UNIT_INTERVAL)
    alpha: Hyper = hyper(0.0, NONNEGATIVE)
    eps: Hyper = hyper(1e-8, NONNEGATIVE)
    eps_root: Hyper = hyper(0.0, NONNEGATIVE)

    def __post_init__(self):
        super().__post_init__()
        _check_eps(self)

    def init(self, params):
        return ScaleBySimplifiedAdEMAMixState(zero_count(), gt.zeros_like(params), gt.zeros_like(params))

    def update(self, updates, state, params=None, **extra_args):
        h = evaluate(self, state.t)
        b1, alpha = gt.scalar_for(h.b1), gt.scalar_for(h.alpha)
        m = gt.cast_like(gt.tree_map_none(lambda g, m: g + b1(m) * m, updates, state.m), state.m)
        n = gt.saturate_like(gt.update_moment_per_elem_norm(updates, state.n, h.b2, 2), state.n)
        t = safe_increment(state.t)
        n_hat = gt.bias_correction(_as_computed(n, updates), h.b2, t)  # stored: no copy of the old
        mix = gt.tree_map_none(lambda m, g: m + alpha(g) * g, m, updates)
        out = adam_direction(mix, n, n_hat, h.eps, h.eps_root)
        return out, ScaleBySimplifiedAdEMAMixState(t, m, n)


@fill
def scale_by_simplified_ademamix(
    b1: Hyper = 0.99,
    b2: Hyper = 0.95,
    alpha: Hyper = 0.0,
    eps: Hyper = 1e-8,
    eps_root: Hyper = 0.0,
) -> ScaleBySimplifiedAdemamix:
    r"""Rescales updates by simplified AdEMAMix: one undamped momentum sum plus $\alpha g$.

    .. math::
        m_t = \beta_1 m_{t-1} + g_t, \quad
        n_t = \beta_2 n_{t-1} + (1-\beta_2) |g_t|^2, \quad
        u_t = \frac{m_t + \alpha\, g_t}{\sqrt{n_t/(1-\beta_2^t) + \epsilon_{root}} + \epsilon}

    $m_t$ is a sum, not an average ($\approx g/(1-\beta_1)$ for a steady
    $g$): scale the learning rate by $1-\beta_1$ to compare with Adam. With
    $\beta_1 = \alpha = 0$ this is :func:`~gradtx.scale_by_adam` with
    $\beta_1 = 0$; AdEMAMix's second, slow EMA becomes the one sum, and no
    schedule of $\alpha$ or $\beta$ is needed.

    optax writes $n_t$ as the interpolation $g_t^2 + \beta_2 (n_{t-1} - g_t^2)$;
    here it is the EMA above, the rule of every second moment in gradtx
    (:func:`~gradtx.core.tree.update_moment_per_elem_norm`): equal up to
    rounding, and $|g|^2$ (real) for complex $g$ where optax squares $g$.
    The division is :func:`~gradtx.scale_by_adam`'s (overflow-guarded): where
    $|g_t|^2$ overflows, $n_t$ is stored saturated and the update is the unit
    step along $m_t + \alpha g_t$ (optax's is 0).

    Args:
      b1: $\beta_1 \in [0, 1)$, the decay of the momentum sum.
      b2: decay rate $\beta_2 \in [0, 1)$ of the second-moment EMA.
      alpha: $\alpha \ge 0$, the extra weight of the current gradient.
      {eps}
      {eps_root}

    Returns:
      {returns_tx} State: :class:`ScaleBySimplifiedAdEMAMixState`.

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> tx = gx.scale_by_simplified_ademamix(alpha=2.0)
      >>> g = jnp.array([1.0, -2.0], jnp.float32)
      >>> u, state = tx.update(g, tx.init(g))
      >>> print(jnp.round(u, 4))  # (1 + alpha) sign(g)
      [ 3. -3.]

    References:
      Morwani et al., *Connections between Schedule-Free Optimizers, AdEMAMix,
      and Accelerated SGD Variants*, 2025 (arXiv:2502.02431).
    """
    return ScaleBySimplifiedAdemamix(b1, b2, alpha, eps, eps_root)
