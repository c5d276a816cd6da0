"""FedAvg / FedOpt: exact equivalences on least squares, weights, padding, jit, server optimizers.

References are hand-written NumPy gradient descent on the clients' (unpadded)
data, never gradtx's own output.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradtx.federated.fedavg import fedavg_round, pad_clients
from gradtx.optimizers.classic import sgd

RTOL = 1e-12
LR = 0.05
SIZES = (4, 2, 3)


def _clients():
    rng = np.random.default_rng(0)
    xs = [rng.normal(size=(n, 3)) for n in SIZES]
    ys = [rng.normal(size=n) for n in SIZES]
    return xs, ys


XS, YS = _clients()
THETA = {"w": np.array([0.3, -0.2, 0.5]), "b": np.array(0.1)}
DATA, MASK = pad_clients([{"x": x, "y": y} for x, y in zip(XS, YS)])
CLIENT_DATA = {**DATA, "mask": MASK}
N_K = np.asarray(SIZES, float)


def masked_mse(params, batch):
    r = batch["x"] @ params["w"] + params["b"] - batch["y"]
    return jnp.sum(jnp.where(batch["mask"], r**2, 0.0)) / jnp.maximum(jnp.sum(batch["mask"]), 1)


def mse(params, batch):
    x, y = batch
    return jnp.mean((x @ params["w"] + params["b"] - y) ** 2)


# One compiled round per (loss, local_steps, stacked) shared by the tests.
ROUND = jax.jit(fedavg_round, static_argnames=("loss_fn", "local_steps", "stacked"))


def np_grad(theta, x, y):
    r = x @ theta["w"] + theta["b"] - y
    return {"w": 2 / len(y) * x.T @ r, "b": 2 / len(y) * r.sum()}


def np_gd(theta, x, y, lr, steps):
    for _ in range(steps):
        g = np_grad(theta, x, y)
        theta = {k: theta[k] - lr * g[k] for k in theta}
    return theta


def np_average(thetas, p):
    p = np.asarray(p, float) / np.sum(p)
    return {k: sum(pk * t[k] for pk, t in zip(p, thetas)) for k in THETA}


def assert_tree_close(a, b, rtol=RTOL):
    for k in THETA:
        np.testing.assert_allclose(np.asarray(a[k]), np.asarray(b[k]), rtol=rtol, atol=0)


def test_one_sgd_step_weighted_by_size_is_the_centralized_full_batch_step():
    out = ROUND(masked_mse, THETA, CLIENT_DATA, sgd(LR), weights=N_K)
    central = np_gd(THETA, np.concatenate(XS), np.concatenate(YS), LR, 1)
    assert_tree_close(out.params, central)
    assert out.server_state is None


def test_equal_sizes_default_weights_are_the_centralized_step():
    x, y = np.stack([XS[0][:2], XS[1], XS[2][:2]]), np.stack([YS[0][:2], YS[1], YS[2][:2]])
    out = ROUND(mse, THETA, (x, y), sgd(LR))
    central = np_gd(THETA, np.concatenate(list(x)), np.concatenate(list(y)), LR, 1)
    assert_tree_close(out.params, central)


def test_several_local_steps_average_local_gd_and_differ_from_centralized():
    steps = 3
    out = ROUND(masked_mse, THETA, CLIENT_DATA, sgd(LR), weights=N_K, local_steps=steps)
    local = [np_gd(THETA, x, y, LR, steps) for x, y in zip(XS, YS)]
    assert_tree_close(out.params, np_average(local, N_K))
    central = np_gd(THETA, np.concatenate(XS), np.concatenate(YS), LR, steps)
    assert np.max(np.abs(np.asarray(out.params["w"]) - central["w"])) > 1e-4
    assert out.client_losses.shape == (3, steps)


def test_default_weights_are_equal():
    local = [np_gd(THETA, x, y, LR, 1) for x, y in zip(XS, YS)]
    default = ROUND(masked_mse, THETA, CLIENT_DATA, sgd(LR))
    assert_tree_close(default.params, np_average(local, [1, 1, 1]))
    same = ROUND(masked_mse, THETA, CLIENT_DATA, sgd(LR), weights=np.array([7.0, 7.0, 7.0]))
    assert_tree_close(same.params, default.params)


def test_client_losses_start_at_the_server_params():
    out = ROUND(masked_mse, THETA, CLIENT_DATA, sgd(LR), local_steps=3)
    expected = [np.mean((x @ THETA["w"] + THETA["b"] - y) ** 2) for x, y in zip(XS, YS)]
    np.testing.assert_allclose(out.client_losses[:, 0], expected, rtol=RTOL)
    after_one = [np_gd(THETA, x, y, LR, 1) for x, y in zip(XS, YS)]
    second = [np.mean((x @ t["w"] + t["b"] - y) ** 2) for t, x, y in zip(after_one, XS, YS)]
    np.testing.assert_allclose(out.client_losses[:, 1], second, rtol=RTOL)


def test_zero_weight_client_is_dropped_even_if_not_finite():
    data = jax.tree.map(lambda a: a, CLIENT_DATA)
    data["x"] = data["x"].at[2].set(jnp.nan)
    out = ROUND(masked_mse, THETA, data, sgd(LR), weights=np.array([4.0, 2.0, 0.0]))
    local = [np_gd(THETA, x, y, LR, 1) for x, y in zip(XS[:2], YS[:2])]
    assert_tree_close(out.params, np_average(local, [4, 2]))


def test_stacked_batches_use_one_batch_per_local_step():
    # Client k's local step e uses rows e*2:(e+1)*2 of an equal-size dataset.
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(2, 2, 2, 3)), rng.normal(size=(2, 2, 2))  # (clients, steps, rows, ...)
    out = ROUND(mse, THETA, (x, y), sgd(LR), stacked=True, weights=np.array([1.0, 3.0]))
    local = []
    for k in range(2):
        theta = THETA
        for e in range(2):
            theta = np_gd(theta, x[k, e], y[k, e], LR, 1)
        local.append(theta)
    assert_tree_close(out.params, np_average(local, [1, 3]))
    assert out.client_losses.shape == (2, 2)
    with pytest.raises(ValueError, match="stacks 2 batches"):
        fedavg_round(mse, THETA, (x, y), sgd(LR), stacked=True, local_steps=3)


def test_jit_reuses_the_compilation_for_new_hyperparameters_and_weights():
    traces = []

    def counted(params, batch):
        traces.append(1)
        return masked_mse(params, batch)

    step = jax.jit(functools.partial(fedavg_round, counted, local_steps=2))
    first = step(THETA, CLIENT_DATA, sgd(LR), weights=jnp.asarray(N_K))
    n = len(traces)
    second = step(THETA, CLIENT_DATA, sgd(2 * LR), weights=jnp.array([1.0, 1.0, 1.0]))
    assert len(traces) == n
    local = [np_gd(THETA, x, y, LR, 2) for x, y in zip(XS, YS)]
    assert_tree_close(first.params, np_average(local, N_K))
    local = [np_gd(THETA, x, y, 2 * LR, 2) for x, y in zip(XS, YS)]
    assert_tree_close(second.params, np_average(local, [1, 1, 1]))


def test_server_sgd_with_unit_rate_is_plain_fedavg():
    plain = ROUND(masked_mse, THETA, CLIENT_DATA, sgd(LR), weights=N_K)
    # optax transforms are not pytrees, so that one runs eagerly (or close over it under jit).
    for server, round_fn in ((sgd(1.0), ROUND), (optax.sgd(1.0), fedavg_round)):
        out = round_fn(
            masked_mse, THETA, CLIENT_DATA, sgd(LR), weights=N_K,
            server_optimizer=server, server_state=server.init(THETA),
        )
        assert_tree_close(out.params, plain.params)


def test_server_momentum_applies_momentum_to_the_negated_average_update():
    lr, beta = 0.7, 0.9
    server = sgd(lr, momentum=beta)
    state = server.init(THETA)
    theta, fed_theta, velocity = THETA, THETA, {k: 0.0 for k in THETA}
    for _ in range(2):
        plain = ROUND(masked_mse, theta, CLIENT_DATA, sgd(LR), weights=N_K).params
        velocity = {k: -(np.asarray(plain[k]) - theta[k]) + beta * velocity[k] for k in THETA}
        theta = {k: theta[k] - lr * velocity[k] for k in THETA}
        fed_theta, state, _ = ROUND(
            masked_mse, fed_theta, CLIENT_DATA, sgd(LR), weights=N_K, server_optimizer=server, server_state=state
        )
    assert_tree_close(fed_theta, theta)


@pytest.mark.parametrize(
    "weights, match",
    [
        ([-1.0, 2.0, 1.0], ">= 0"),
        ([1.0, np.nan, 1.0], "finite"),
        ([0, 0, 0], "all zero"),
        ([1.0, 1.0], r"shape \(3,\)"),
        ([[1.0, 1.0, 1.0]], r"shape \(3,\)"),
    ],
)
def test_bad_weights_raise(weights, match):
    with pytest.raises(ValueError, match=match):
        fedavg_round(masked_mse, THETA, CLIENT_DATA, sgd(LR), weights=np.asarray(weights))


def test_bad_arguments_raise():
    args = (masked_mse, THETA, CLIENT_DATA, sgd(LR))
    with pytest.raises(TypeError, match="real numbers"):
        fedavg_round(*args, weights=np.array([1j, 1, 1]))
    with pytest.raises(ValueError, match="`local_steps` must be >= 1"):
        fedavg_round(*args, local_steps=0)
    with pytest.raises(TypeError, match="`local_steps` must be an int"):
        fedavg_round(*args, local_steps=1.5)
    with pytest.raises(ValueError, match="needs its state"):
        fedavg_round(*args, server_optimizer=sgd(1.0))
    with pytest.raises(ValueError, match="without `server_optimizer`"):
        fedavg_round(*args, server_state=sgd(1.0).init(THETA))
    with pytest.raises(ValueError, match="same leading client axis"):
        fedavg_round(mse, THETA, (XS[0][:3], YS[1]), sgd(LR))
    with pytest.raises(TypeError, match="init"):
        fedavg_round(masked_mse, THETA, CLIENT_DATA, "sgd")


def test_float32_params_keep_their_dtype():
    theta = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), THETA)
    data = jax.tree.map(lambda a: a.astype(jnp.float32) if a.dtype.kind == "f" else a, CLIENT_DATA)
    out = fedavg_round(masked_mse, theta, data, sgd(LR), weights=[4, 2, 3])
    assert {str(v.dtype) for v in jax.tree.leaves(out.params)} == {"float32"}
    central = np_gd(THETA, np.concatenate(XS), np.concatenate(YS), LR, 1)
    assert_tree_close(out.params, central, rtol=1e-5)


def test_pad_clients():
    data, mask = pad_clients([(np.ones((2, 3)), np.ones(2)), (2 * np.ones((1, 3)), np.zeros(1))])
    assert data[0].shape == (2, 2, 3) and data[1].shape == (2, 2)
    np.testing.assert_array_equal(mask, [[True, True], [True, False]])
    np.testing.assert_array_equal(data[0][1], [[2, 2, 2], [0, 0, 0]])
    with pytest.raises(ValueError, match="empty"):
        pad_clients([])
    with pytest.raises(ValueError, match="different tree structures"):
        pad_clients([(np.ones(2),), [np.ones(2)]])
    with pytest.raises(ValueError, match="leading example axis"):
        pad_clients([(np.ones(2), np.ones(3))])
