"""Checkpoints: exact, pickle-free saving and loading of any gradtx pytree.

:func:`gradtx.checkpoint.io.save` writes params, optimizers and optimizer
states (or any pytree of arrays, Python numbers, typed PRNG keys and None) to a
single ``.npz`` file, atomically; :func:`gradtx.checkpoint.io.load` reads it
back bit for bit, into the structure of a ``like`` tree when one is given.
"""
