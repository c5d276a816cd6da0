"""Muon: orthogonalised momentum for the matrices, AdamW for the rest (optax.contrib's ``muon``)."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax

from gradtx.core.docs import fill
from gradtx.core.hyperparams import Hyper
from gradtx.optimizers._naming import as_argument_of
from gradtx.optimizers.adam_family import adamw
from gradtx.transforms.basic import scale_by_learning_rate
from gradtx.transforms.combine import chain
from gradtx.transforms.muon import scale_by_muon, scale_by_shape
from gradtx.transforms.newton_schulz import DEFAULT_NS_COEFFS, leaf_specs, static_dimension_numbers
from gradtx.transforms.weight_decay import add_decayed_weights
from gradtx.wrappers.partition import Partition, partition

__all__ = ["muon"]


@dataclasses.dataclass(frozen=True)
class _MuonLabels:
    """``params -> labels`` of :func:`muon`'s partition: ``'muon'`` or ``'adam'`` per leaf.

    A frozen dataclass, not a closure: it is a static field of the partition,
    and two optimizers built with the same arguments must compare equal (or a
    new learning rate would recompile).
    """

    spec: Any  # a static_dimension_numbers value

    def __call__(self, tree: Any) -> Any:
        leaves, treedef = jax.tree.flatten(tree)
        if self.spec is None:  # the default: the 2-D leaves are Muon's
            labels = ["muon" if jax.numpy.ndim(x) == 2 else "adam" for x in leaves]
        else:
            specs = leaf_specs(self.spec, tree, "gx.muon", "muon_weight_dimension_numbers")
            labels = ["adam" if s is None else "muon" for s in specs]
        return treedef.unflatten(labels)


@fill
def muon(
    learning_rate: Hyper,
    ns_coeffs: Any = DEFAULT_NS_COEFFS,
    ns_steps: int = 5,
    beta: Hyper = 0.95,
    eps: Hyper = 1e-8,
    weight_decay: Hyper = 0.0,
    weight_decay_mask: Any = None,
    mu_dtype: Any = None,
    *,
    nesterov: bool = True,
    adaptive: bool = False,
    preconditioning: str = "frobenius",
    adam_b1: Hyper = 0.9,
    adam_b2: Hyper = 0.999,
    adam_eps_root: Hyper = 0.0,
    adam_weight_decay: Hyper = 0.0,
    adam_learning_rate: Hyper | None = None,
    muon_weight_dimension_numbers: Any = None,
    consistent_rms: Hyper | None = None,
) -> Partition:
    r"""Muon: MomentUm Orthogonalized by Newton–Schulz for the matrices, AdamW for the rest.

    For a matrix parameter $W$ (each 2-D leaf, or each leaf given
    dimension numbers):

    .. math::
        m_t = \beta m_{t-1} + (1-\beta) g_t, \quad
        \hat m_t = \frac{\beta\, m_t}{1-\beta^{t+1}} + \frac{(1-\beta)\, g_t}{1-\beta^t}, \quad
        O_t = \mathrm{NS}(\hat m_t) \approx U V^\top, \\
        W_{t+1} = W_t - \eta\left(s\, O_t + \lambda W_t\right), \qquad
        s = \sqrt{\max(1, n_{out}/n_{in})} \ \text{ or } \ \rho\sqrt{\max(n_{in}, n_{out})},

    where $\hat m_t = U S V^\top$, NS is ``ns_steps`` Newton–Schulz steps
    (:func:`~gradtx.orthogonalize_via_newton_schulz`), $s$ is
    :func:`~gradtx.scale_by_shape`'s factor ($\rho$ = ``consistent_rms``) and
    $\lambda$ = ``weight_decay``. Every other leaf (vectors, scalars, and
    leaves whose dimension numbers are None) follows
    :func:`~gradtx.adamw` with ``b1=adam_b1``, ``b2=adam_b2``, ``eps``,
    ``eps_root=adam_eps_root``, ``weight_decay=adam_weight_decay``, the same
    ``nesterov`` and ``mu_dtype``, and learning rate ``adam_learning_rate``
    (default: ``learning_rate``).

    It is ``partition({"muon": chain(scale_by_muon(...), scale_by_shape(...),
    add_decayed_weights(weight_decay, weight_decay_mask),
    scale_by_learning_rate(learning_rate)), "adam": adamw(...)}, labels)``:
    optax.contrib's ``muon``, with its state layout (less ``ns_coeffs``, see
    :class:`~gradtx.MuonState`) and numerics (parity tested, every
    preconditioning, 100 steps, float64 and float32). Every number, the
    Newton–Schulz coefficients included, is a pytree leaf: ``jax.jit`` does
    not recompile when one changes and ``jax.vmap`` over a batch of
    coefficient arrays or learning rates is a sweep. Structure is static:
    ``ns_steps``, ``nesterov``, ``adaptive``, ``preconditioning``, the
    dimension numbers, the mask and ``mu_dtype``.

    Args:
      {learning_rate}
      ns_coeffs: Newton–Schulz coefficients $(a, b, c)$ (default
        $(3.4445, -4.7750, 2.0315)$), a table of ``ns_steps`` rows, or a
        preset: ``'standard'`` or ``'dion'`` (Ahn et al.'s 5 rows).
      ns_steps: the number of Newton–Schulz steps (static int >= 1, default 5).
      beta: Muon's momentum decay $\beta \in [0, 1)$ (default 0.95).
      eps: $\epsilon \ge 0$ of the Newton–Schulz pre-scaling and of AdamW
        (default 1e-8).
      weight_decay: $\lambda \ge 0$ for the matrices, multiplied by the
        learning rate (default 0).
      weight_decay_mask: a pytree of booleans like the params (a prefix
        allowed), or a function ``params -> mask``, selecting the matrices
        decayed by ``weight_decay``; None decays all of them.
      {mu_dtype}
      nesterov: Nesterov momentum, for both Muon and AdamW (default True).
      adaptive: scale the matrices' updates by $\langle \hat m_t, O_t\rangle$
        (Bernstein & Newhouse; default False).
      preconditioning: ``'frobenius'`` (default), ``'spectral'``, ``'aol'``
        (Turbo-Muon) or ``'schatten'``, as in
        :func:`~gradtx.orthogonalize_via_newton_schulz`.
      adam_b1: AdamW's $\beta_1$ (default 0.9).
      adam_b2: AdamW's $\beta_2$ (default 0.999).
      adam_eps_root: AdamW's $\epsilon_{root}$ (default 0).
      adam_weight_decay: AdamW's weight decay (default 0).
      adam_learning_rate: AdamW's learning rate; None uses ``learning_rate``.
      muon_weight_dimension_numbers: None (default: the 2-D leaves are
        Muon's, with reduction axis 0 and output axis 1), or a pytree like the
        params (a prefix allowed) of :class:`~gradtx.MuonDimensionNumbers`
        and None (None: that leaf goes to AdamW), one
        :class:`~gradtx.MuonDimensionNumbers` for every leaf, or a function
        ``params -> such a pytree``. Static.
      consistent_rms: None (default: width scaling), or $\rho \ge 0$ for
        consistent-RMS scaling (0.2 matches AdamW's update RMS; Liu et al.).

    {hyper}

    Returns:
      A :class:`~gradtx.GradientTransformation` (a pytree): the partition.
      State: a ``PartitionState`` with the ``'adam'`` and ``'muon'`` chains'
      states.

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> opt = gx.muon(learning_rate=0.1)
      >>> params = {"w": jnp.ones((4, 2), jnp.float32), "b": jnp.zeros(2, jnp.float32)}
      >>> grads = {"w": jnp.eye(4, 2, dtype=jnp.float32), "b": jnp.array([1.0, -1.0], jnp.float32)}
      >>> updates, state = opt.update(grads, opt.init(params), params)
      >>> [round(float(v), 3) for v in jnp.diag(updates["w"])]  # Muon: both directions, equal steps
      [-0.111, -0.111]
      >>> [round(float(v), 3) for v in updates["b"]]  # AdamW, Nesterov: -lr (1 + b1/(1 + b1)) sign(g)
      [-0.147, 0.147]

    References:
      Jordan, *Muon: An optimizer for hidden layers in neural networks*
      (modded-nanogpt), 2024.
      Bernstein & Newhouse, *Old Optimizer, New Norm: An Anthology*,
      arXiv:2409.20325, 2024.
      Liu et al., *Muon is Scalable for LLM Training*, arXiv:2502.16982, 2025.
      Boissin et al., *Turbo-Muon: Accelerating Orthogonality-Based Optimization
      with Pre-Conditioning*, arXiv:2512.04632, 2025.
      Ahn et al., *Dion: Distributed Orthonormalized Updates*, arXiv:2504.05295, 2025.
      Grishina et al., *Accelerating Newton-Schulz Iteration for Orthogonalization
      via Chebyshev-type Polynomials*, arXiv:2506.10935, 2025.
      Amsel et al., *The Polar Express: Optimal Matrix Sign Methods and Their
      Application to the Muon Algorithm*, arXiv:2505.16932, 2025.
    """
    spec = static_dimension_numbers(muon_weight_dimension_numbers, "gx.muon", "muon_weight_dimension_numbers")
    with as_argument_of("muon", weight_dimension_numbers="muon_weight_dimension_numbers"):
        matrices = chain(
            scale_by_muon(
                ns_coeffs, ns_steps, beta, eps, mu_dtype, nesterov=nesterov, adaptive=adaptive,
                preconditioning=preconditioning, weight_dimension_numbers=spec,
            ),
            scale_by_shape(spec, consistent_rms),
            add_decayed_weights(weight_decay, weight_decay_mask),
            scale_by_learning_rate(learning_rate),
        )
    renames = {"b1": "adam_b1", "b2": "adam_b2", "eps_root": "adam_eps_root", "weight_decay": "adam_weight_decay"}
    if adam_learning_rate is not None:
        renames["learning_rate"] = "adam_learning_rate"
    with as_argument_of("muon", **renames):
        rest = adamw(
            learning_rate if adam_learning_rate is None else adam_learning_rate,
            adam_b1, adam_b2, eps, adam_eps_root, mu_dtype, adam_weight_decay, nesterov=nesterov,
        )
    return partition({"muon": matrices, "adam": rest}, _MuonLabels(spec))
