"""A sweep sharded across 4 simulated CPU devices equals the single-device sweep."""

import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np
    jax.config.update("jax_enable_x64", True)
    import gradtx as gx
    assert len(jax.devices()) == 4, jax.devices()
    prob = gx.noisy_quadratic(dim=5)
    space = gx.Space(gx.adam, learning_rate=gx.log_uniform(1e-3, 1.0), b1=gx.uniform(0.5, 0.95))
    kw = dict(steps=30, num=6, key=jax.random.key(0), data=prob.data, progress=False)  # 6 runs: padded to 8
    one = gx.sweep(prob.batch_loss, prob.params(jnp.float64), space, devices=1, **kw)
    four = gx.sweep(prob.batch_loss, prob.params(jnp.float64), space, devices=4, **kw)
    shards = four.states["adam"].params.sharding
    assert len(four) == 6 and len(shards.device_set) == 4, shards
    np.testing.assert_array_equal(np.asarray(four.states["adam"].params), np.asarray(one.states["adam"].params))
    np.testing.assert_array_equal(four.curves, one.curves)
    for m in one.metrics:
        np.testing.assert_array_equal(four.metrics[m], one.metrics[m])
    kw = dict(steps=40, interval=10, num=8, key=jax.random.key(1), data=prob.data, progress=False)
    p1 = gx.pbt(prob.batch_loss, prob.params(jnp.float64), space, devices=1, **kw)
    p4 = gx.pbt(prob.batch_loss, prob.params(jnp.float64), space, devices=4, **kw)
    np.testing.assert_array_equal(p4.parents, p1.parents)
    np.testing.assert_array_equal(p4.history["learning_rate"], p1.history["learning_rate"])
    np.testing.assert_allclose(p4.result.curves, p1.result.curves, rtol=1e-12)
    print("SHARDED-OK")
    """
)


@pytest.mark.slow
def test_sharded_sweep_and_pbt_equal_single_device():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and "SHARDED-OK" in out.stdout, out.stderr[-3000:]
