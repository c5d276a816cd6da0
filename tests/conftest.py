"""Strict settings for every test: x64 on, rank promotion raises, warnings are errors.

x64 is enabled so parity can be checked in float64; float32 tests pass dtypes
explicitly. Keep problems tiny and reuse compiled functions: compiles dominate
the suite's time on 2 cores.
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1")

import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

from hypothesis import HealthCheck, settings

settings.register_profile(
    "gradtx",
    deadline=None,
    max_examples=25,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
settings.load_profile("gradtx")
