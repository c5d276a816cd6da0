r"""Federated averaging (FedAvg) and its server-optimizer form (FedOpt), one round at a time.

The lecture's federated learning (seed 001, §3.2.3): "users retrieve the
current model parameters from the server and calculate the gradients
*locally*. They send only the gradients, but not the data, to the server, and
the overall gradient is calculated at the server as the weighted sum (or
average) of the user gradients." FedAvg (McMahan et al., 2017) lets each
client take several local optimizer steps before it reports, and the server
averages the resulting *parameter changes* instead of single gradients.

All clients of a round run in one ``jax.vmap``: their data carries a leading
client axis, and the whole round is a pure function that ``jax.jit`` compiles
once (the optimizers are pytrees, so a new learning rate does not recompile).

References:
  McMahan, Moore, Ramage, Hampson & Agüera y Arcas, *Communication-Efficient
  Learning of Deep Networks from Decentralized Data*, AISTATS 2017;
  Reddi, Charles, Zaheer, Garrett, Rush, Konečný, Kumar & McMahan,
  *Adaptive Federated Optimization*, ICLR 2021.
"""

from __future__ import annotations

import operator
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gradtx.core.base import OptState, Params, apply_updates
from gradtx.core.hyperparams import NONNEGATIVE, concrete_value
from gradtx.core.tree import check_same_structure, tree_map_none
from gradtx.transforms.combine import as_transform

__all__ = ["FedAvgResult", "fedavg_round", "pad_clients"]

_WHERE = "gx.fedavg_round"


class FedAvgResult(NamedTuple):
    """What one round of :func:`fedavg_round` returns.

    Attributes:
      params: the new server parameters $\\theta^+$.
      server_state: the server optimizer's new state (None without one).
      client_losses: ``(num_clients, local_steps)`` array: entry ``[k, s]`` is
        client $k$'s loss before its local step $s$, so column 0 is the loss
        of the incoming server parameters on each client's data.
    """

    params: Params
    server_state: OptState | None
    client_losses: jax.Array


def fedavg_round(
    loss_fn: Callable[[Params, Any], jax.Array],
    params: Params,
    client_data: Any,
    client_optimizer: Any,
    *,
    local_steps: int | None = None,
    stacked: bool = False,
    weights: Any = None,
    server_optimizer: Any = None,
    server_state: OptState | None = None,
) -> FedAvgResult:
    r"""One round of federated averaging: local training on every client, then a weighted average.

    Every client $k = 1..K$ starts from the server parameters $\theta$ and a
    fresh ``client_optimizer.init`` state, and takes $E$ local steps on its
    own data $D_k$:

    .. math::
        \theta_k^{(0)} = \theta, \qquad
        (u, s_k) = \mathrm{client}(\nabla f(\theta_k^{(e)}; D_k^{(e)}), s_k, \theta_k^{(e)}),
        \qquad \theta_k^{(e+1)} = \theta_k^{(e)} + u .

    The server averages the client updates
    $\Delta_k = \theta_k^{(E)} - \theta$ with normalized weights
    $p_k = w_k / \sum_j w_j$ (McMahan et al. use $w_k = n_k$, the client's
    number of examples) and applies the average:

    .. math::
        \Delta = \sum_k p_k \Delta_k, \qquad
        \theta^+ = \theta + \Delta \quad \text{(FedAvg)}, \qquad
        (u, s^+) = \mathrm{server}(-\Delta, s, \theta),\ \theta^+ = \theta + u
        \quad \text{(FedOpt)}.

    With ``server_optimizer`` the average update is a pseudo-gradient $-\Delta$
    for any gradtx (or optax) transformation (Reddi et al., 2021: FedAdam,
    FedYogi, FedAvgM); ``gx.sgd(1.0)`` reproduces plain FedAvg. With one local
    step of ``gx.sgd(eta)``, full batches, a *mean* loss per client and
    $w_k = n_k$, the round is exactly one full-batch gradient step on the
    union of the data (FedSGD): $\sum_k \frac{n_k}{N}\nabla f_k = \nabla f$.

    **Client data.** ``client_data`` is a pytree whose leaves all have the
    client axis first (length $K$). ``loss_fn(params, batch)`` receives one
    client's slice and returns a scalar. By default (``stacked=False``) that
    slice is one batch, used for every local step (full-batch local gradient
    descent, McMahan's $B = \infty$). With ``stacked=True`` each leaf has a
    second axis of $E$ batches and local step $e$ uses batch $e$ (minibatch
    local SGD: shuffle and reshape the client's data into batches yourself).

    **Unequal client sizes.** ``vmap`` needs equal shapes, so pad every client
    to the largest size and let ``loss_fn`` ignore the padding with a mask
    that travels in the data, e.g. ``sum(mask * err**2) / max(sum(mask), 1)``;
    pass ``weights=mask.sum(axis=1)``. :func:`pad_clients` builds the padded
    stack and the mask. Clients with weight 0 (padding clients, or clients
    not sampled this round) are excluded exactly: their update is dropped even
    if it is not finite.

    Args:
      loss_fn: ``(params, batch) -> scalar`` loss of one client's batch.
        It is static: pass it with ``functools.partial`` before ``jax.jit``.
      params: the server parameters $\theta$ (a pytree of float arrays).
      client_data: a pytree of arrays with a leading client axis $K$ (and,
        with ``stacked=True``, a second axis of $E$ batches).
      client_optimizer: the local optimizer (a gradtx or optax
        transformation), shared by all clients; its state lives only for one
        round, as in FedAvg. A gradtx optimizer is a pytree and can be a
        ``jit`` argument; an optax one is not: close over it (``partial``).
      local_steps: the number of local steps $E \ge 1$ (static). Default None:
        1, or with ``stacked=True`` the length of the data's second axis (an
        int given with ``stacked=True`` must equal it).
      stacked: whether ``client_data`` holds one batch per local step (static).
      weights: ``(K,)`` non-negative client weights $w_k$, not all zero;
        normalized by their sum. Default None: equal weights $p_k = 1/K$.
        Concrete weights are validated; traced ones (under ``jit``) are not.
      server_optimizer: None for FedAvg's $\theta + \Delta$, or a
        transformation applied to the pseudo-gradient $-\Delta$ (FedOpt).
      server_state: the server optimizer's state: ``server_optimizer.init(params)``
        on the first round, then the returned one. Only with ``server_optimizer``.

    Returns:
      A :class:`FedAvgResult` ``(params, server_state, client_losses)``.

    Raises:
      ValueError: bad ``weights`` (wrong shape, negative, not finite, all
        zero), client data without a common client axis, a bad
        ``local_steps``, or ``server_state`` missing/unexpected.
      TypeError: ``local_steps`` is not an int, or an optimizer lacks
        ``init``/``update``.

    Example:
      >>> import functools, jax, jax.numpy as jnp, gradtx as gx
      >>> def loss(w, batch):                      # mean squared error
      ...     x, y = batch
      ...     return jnp.mean((x * w - y) ** 2)
      >>> x = jnp.array([[1.0, 2.0], [3.0, 4.0]])  # 2 clients, 2 examples each
      >>> w = jnp.zeros([], jnp.float32)
      >>> out = gx.fedavg_round(loss, w, (x, 2 * x), gx.sgd(0.1))
      >>> print(out.params)                        # mean of client 1's 1.0 and client 2's 5.0
      3.0
      >>> print(out.client_losses)                 # (clients, local steps)
      [[10.]
       [50.]]
      >>> step = jax.jit(functools.partial(gx.fedavg_round, loss, local_steps=3))
      >>> out = step(w, (x, 2 * x), gx.sgd(0.01), weights=jnp.array([1.0, 3.0]))
    """
    client_optimizer = as_transform(client_optimizer, "fedavg_round")
    num_clients = _num_clients(client_data)
    local_steps = _local_steps(local_steps, stacked, client_data)
    probs = _normalized_weights(weights, num_clients)
    if server_optimizer is None and server_state is not None:
        raise ValueError(f"{_WHERE}: `server_state` was given without `server_optimizer`; drop it.")
    if server_optimizer is not None and server_state is None:
        raise ValueError(
            f"{_WHERE}: `server_optimizer` needs its state: pass "
            "`server_state=server_optimizer.init(params)` on the first round, then the returned one."
        )

    def local_training(data):
        def step(carry, batch):
            theta, state = carry
            loss, grads = jax.value_and_grad(loss_fn)(theta, batch)
            updates, state = client_optimizer.update(grads, state, theta)
            return (apply_updates(theta, updates), state), loss

        carry = (params, client_optimizer.init(params))
        if stacked:
            (theta, _), losses = jax.lax.scan(step, carry, data)
        else:
            (theta, _), losses = jax.lax.scan(lambda c, _: step(c, data), carry, None, length=local_steps)
        return theta, losses

    client_params, losses = jax.vmap(local_training)(client_data)
    delta = tree_map_none(
        lambda t, p: _weighted_sum(probs, t - jnp.asarray(p)[None]), client_params, params
    )
    if server_optimizer is None:
        return FedAvgResult(apply_updates(params, delta), None, losses)
    server_optimizer = as_transform(server_optimizer, "fedavg_round")
    pseudo_grad = tree_map_none(jnp.negative, delta)
    updates, server_state = server_optimizer.update(pseudo_grad, server_state, params)
    return FedAvgResult(apply_updates(params, updates), server_state, losses)


def pad_clients(datasets: Sequence[Any]) -> tuple[Any, jax.Array]:
    r"""Stacks clients' datasets of different sizes into one padded batch with a mask.

    Each dataset is a pytree whose leaves share a leading example axis of
    length $n_k$. Every leaf is zero-padded to $n_{max} = \max_k n_k$ and
    stacked along a new leading client axis, ready for :func:`fedavg_round`.

    Args:
      datasets: a non-empty sequence of pytrees with the same structure.

    Returns:
      ``(data, mask)``: ``data`` has leaves of shape ``(K, n_max, ...)``;
      ``mask`` is a ``(K, n_max)`` boolean array, True on real examples.
      ``mask.sum(axis=1)`` are the client sizes $n_k$ (FedAvg's weights).

    Raises:
      ValueError: no datasets, different tree structures, or a dataset whose
        leaves disagree on the number of examples.

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> data, mask = gx.pad_clients([jnp.array([1.0, 2.0, 3.0]), jnp.array([4.0])])
      >>> print(data)
      [[1. 2. 3.]
       [4. 0. 0.]]
      >>> print(mask.sum(axis=1))
      [3 1]
    """
    if len(datasets) == 0:
        raise ValueError("gx.pad_clients: `datasets` is empty; pass one dataset per client.")
    sizes = []
    for k, ds in enumerate(datasets):
        check_same_structure(ds, datasets[0], f"datasets[{k}]", "datasets[0]", "gx.pad_clients")
        lengths = {np.shape(x)[0] if np.ndim(x) else None for x in jax.tree.leaves(ds)}
        if len(lengths) != 1 or None in lengths:
            raise ValueError(
                f"gx.pad_clients: the leaves of `datasets[{k}]` must share a leading example "
                f"axis, got lengths {sorted(lengths, key=str)}."
            )
        sizes.append(lengths.pop())
    n_max = max(sizes)

    def pad(*leaves):
        return jnp.stack(
            [jnp.pad(jnp.asarray(x), [(0, n_max - len(x))] + [(0, 0)] * (np.ndim(x) - 1)) for x in leaves]
        )

    data = jax.tree.map(pad, *datasets)
    mask = jnp.arange(n_max)[None] < jnp.asarray(sizes)[:, None]
    return data, mask


def _num_clients(client_data: Any) -> int:
    """The common leading axis of ``client_data``'s leaves, validated."""
    leaves = jax.tree.leaves(client_data)
    if not leaves:
        raise ValueError(f"{_WHERE}: `client_data` has no arrays; pass a pytree with a leading client axis.")
    lengths = {jnp.shape(x)[0] if jnp.ndim(x) else None for x in leaves}
    if len(lengths) != 1 or None in lengths:
        raise ValueError(
            f"{_WHERE}: every leaf of `client_data` needs the same leading client axis, got "
            f"lengths {sorted(lengths, key=str)} (None: a scalar leaf). Stack the clients' "
            "data along axis 0 (see gx.pad_clients for clients of different sizes)."
        )
    return lengths.pop()


def _local_steps(local_steps: Any, stacked: bool, client_data: Any) -> int:
    """The number of local steps: given, or read from the stacked batches."""
    if local_steps is not None:
        try:
            local_steps = operator.index(local_steps)
        except TypeError:
            raise TypeError(f"{_WHERE}: `local_steps` must be an int, got {local_steps!r}.") from None
        if local_steps < 1:
            raise ValueError(f"{_WHERE}: `local_steps` must be >= 1, got {local_steps}.")
    if not stacked:
        return 1 if local_steps is None else local_steps
    counts = {jnp.shape(x)[1] if jnp.ndim(x) >= 2 else None for x in jax.tree.leaves(client_data)}
    if len(counts) != 1 or None in counts:
        raise ValueError(
            f"{_WHERE}: with `stacked=True` every leaf of `client_data` needs shape "
            f"(clients, local_steps, ...), got batch-axis lengths {sorted(counts, key=str)}."
        )
    count = counts.pop()
    if local_steps is not None and local_steps != count:
        raise ValueError(
            f"{_WHERE}: `local_steps={local_steps}` but `client_data` stacks {count} batches "
            f"per client (axis 1); pass local_steps={count} or leave it None."
        )
    return count


def _normalized_weights(weights: Any, num_clients: int) -> jax.Array:
    r"""$p_k = w_k / \sum_j w_j$ (equal when ``weights`` is None), validated when concrete."""
    if weights is None:
        return jnp.full([num_clients], 1.0 / num_clients)
    w = jnp.asarray(weights)
    if w.shape != (num_clients,):
        raise ValueError(
            f"{_WHERE}: `weights` must have shape ({num_clients},), one per client, got shape {w.shape}."
        )
    if w.dtype.kind not in "biuf":
        raise TypeError(f"{_WHERE}: `weights` must be real numbers, got dtype {w.dtype}.")
    arr = concrete_value(weights)
    if arr is not None:
        if not np.all(np.isfinite(arr)) or not np.all(NONNEGATIVE.predicate(arr)):
            raise ValueError(f"{_WHERE}: `weights` must be finite and >= 0, got {arr}.")
        if not np.any(arr > 0):
            raise ValueError(
                f"{_WHERE}: `weights` are all zero; at least one client needs a positive weight."
            )
    w = w.astype(jnp.result_type(float))
    return w / jnp.sum(w)


def _weighted_sum(probs: jax.Array, stacked: jax.Array) -> jax.Array:
    """$\\sum_k p_k x_k$ over the leading axis; clients with $p_k = 0$ are dropped exactly."""
    shaped = probs.reshape((-1,) + (1,) * (stacked.ndim - 1))
    kept = jnp.where(shaped > 0, stacked, jnp.zeros([], stacked.dtype))
    return jnp.tensordot(probs.astype(stacked.dtype), kept, axes=1)
