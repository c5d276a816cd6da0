r"""Packed parameters: one contiguous buffer per dtype, with cheap views for the model.

A model with hundreds of small arrays pays, every step, a per-array cost: one
loop (and one set of kernel launches) per leaf for each optimizer pass, and a
compile time that grows with the number of leaves. :func:`pack` keeps params —
and therefore gradients and optimizer state, which mirror them — as one flat
buffer per dtype *across* steps; :meth:`Packed.unpack` gives the model its
usual tree as slices and reshapes of that buffer, which XLA fuses into the
consumers, so no per-step concatenate or split is written.

.. code-block:: python

    packed = gx.pack(params)                         # once
    loss_fn = lambda pk, batch: loss(pk.unpack(), batch)
    state = opt.init(packed)                         # moments: one buffer per dtype

    @jax.jit
    def step(packed, state, batch):
        grads = jax.grad(loss_fn)(packed, batch)     # a Packed too
        updates, state = opt.update(grads, state, packed)
        return gx.apply_updates(packed, updates), state

    params = packed.unpack()                         # the usual tree, when needed

Per-leaf semantics change with packing: a transform that treats each leaf as
a block (:func:`gradtx.clip_by_block_rms`) sees one block per dtype, and masks
must be given for the packed tree (one entry per buffer). Elementwise
transforms and global norms are unchanged (equal to the unpacked results up to
floating-point summation order).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Layout", "Packed", "pack"]


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where each leaf lives: static (hashable) metadata of a :class:`Packed`.

    Attributes:
      treedef: the params' tree structure.
      dtypes: one dtype name per buffer.
      slots: per leaf, ``(buffer index, offset, shape)``.
    """

    treedef: Any
    dtypes: tuple[str, ...]
    slots: tuple[tuple[int, int, tuple[int, ...]], ...]

    def sizes(self) -> tuple[int, ...]:
        """Elements in each buffer."""
        out = [0] * len(self.dtypes)
        for b, off, shape in self.slots:
            out[b] = max(out[b], off + math.prod(shape))
        return tuple(out)


@jax.tree_util.register_pytree_node_class
class Packed:
    """Params (or a tree that mirrors them) stored as one 1-D buffer per dtype.

    A pytree whose leaves are the buffers, so ``jax.grad``, optimizers,
    ``jax.vmap`` and checkpoints treat it like any params tree. Build it with
    :func:`pack`; read the tree back with :meth:`unpack`.

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> params = {"w": jnp.ones((2, 3), jnp.float32), "b": jnp.zeros(3, jnp.float32)}
      >>> packed = gx.pack(params)
      >>> [b.shape for b in packed.buffers]
      [(9,)]
      >>> packed.unpack()["w"].shape
      (2, 3)
    """

    __slots__ = ("buffers", "layout")

    def __init__(self, buffers: tuple, layout: Layout):
        self.buffers = tuple(buffers)
        self.layout = layout

    def tree_flatten(self):
        return self.buffers, self.layout

    @classmethod
    def tree_unflatten(cls, layout, buffers):
        return cls(buffers, layout)

    def unpack(self) -> Any:
        """The original tree, as reshaped slices of the buffers (leading batch axes kept)."""
        leaves = []
        for b, off, shape in self.layout.slots:
            buf = self.buffers[b]
            lead = jnp.shape(buf)[:-1]
            piece = jax.lax.slice_in_dim(buf, off, off + math.prod(shape), axis=jnp.ndim(buf) - 1)
            leaves.append(piece.reshape(lead + tuple(shape)))
        return jax.tree.unflatten(self.layout.treedef, leaves)

    def __repr__(self) -> str:
        bufs = ", ".join(f"{d}[{n}]" for d, n in zip(self.layout.dtypes, self.layout.sizes()))
        return f"Packed({len(self.layout.slots)} leaves in {bufs})"


def pack(params: Any) -> Packed:
    r"""Packs a params tree into one contiguous 1-D buffer per dtype.

    Leaves are laid out in tree order; leaves of the same dtype share a buffer.
    Pack once, before training, and keep the :class:`Packed` as your params:
    packing every step would write a copy each time.

    Args:
      params: a pytree of arrays (``None`` entries are kept as structure).

    Returns:
      A :class:`Packed` whose :meth:`~Packed.unpack` returns ``params``.

    Raises:
      TypeError: ``params`` is already a :class:`Packed`.
    """
    if isinstance(params, Packed):
        raise TypeError("gx.pack: `params` is already packed; call `.unpack()` first to repack.")
    leaves, treedef = jax.tree.flatten(params)
    dtypes: list[str] = []
    pieces: list[list[Any]] = []
    offsets: list[int] = []
    slots = []
    for leaf in leaves:
        leaf = jnp.asarray(leaf)
        name = np.dtype(leaf.dtype).name
        if name not in dtypes:
            dtypes.append(name)
            pieces.append([])
            offsets.append(0)
        b = dtypes.index(name)
        slots.append((b, offsets[b], tuple(leaf.shape)))
        pieces[b].append(leaf.reshape(-1))
        offsets[b] += leaf.size
    buffers = tuple(jnp.concatenate(p) if len(p) > 1 else p[0] for p in pieces)
    return Packed(buffers, Layout(treedef, tuple(dtypes), tuple(slots)))
