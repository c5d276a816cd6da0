"""Spreading the run axis of a sweep across devices with ``jax.sharding``.

Runs are independent, so sharding the leading (run) axis over a 1-D mesh gives
one SPMD program in which each device trains its slice of the runs: no
collective in the training step and no Python loop over devices.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = ["resolve_devices", "shard_runs", "replicate"]


def resolve_devices(devices: int | Sequence[jax.Device] | None) -> list[jax.Device]:
    """``None`` → every local device; ``n`` → the first n; a list → itself."""
    local = jax.local_devices()
    if devices is None:
        return list(local)
    if isinstance(devices, int):
        if not 1 <= devices <= len(local):
            raise ValueError(
                f"devices={devices} but {len(local)} device(s) are visible. On CPU, simulate more with "
                f"XLA_FLAGS=--xla_force_host_platform_device_count={max(devices, 1)} before importing jax."
            )
        return list(local[:devices])
    devices = list(devices)
    if not devices:
        raise ValueError("devices: the list is empty.")
    return devices


def _mesh(devices: Sequence[jax.Device]) -> Mesh:
    import numpy as np

    return Mesh(np.asarray(devices), ("runs",))


def shard_runs(tree: Any, devices: Sequence[jax.Device]) -> Any:
    """Places ``tree``'s leaves with their leading axis split across ``devices``."""
    return jax.device_put(tree, NamedSharding(_mesh(devices), PartitionSpec("runs")))


def replicate(tree: Any, devices: Sequence[jax.Device]) -> Any:
    """Places a full copy of ``tree`` on every device."""
    if tree is None:
        return None
    return jax.device_put(tree, NamedSharding(_mesh(devices), PartitionSpec()))
