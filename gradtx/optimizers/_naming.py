"""Errors of an optimizer's primitives, re-raised under the optimizer's name."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

__all__ = ["as_argument_of"]


@contextlib.contextmanager
def as_argument_of(owner: str, **renames: str) -> Iterator[None]:
    """Re-raises a primitive's bad-input error as the optimizer's, with its argument names.

    ``gx.ema: `decay` must be in [0, 1)`` raised while building ``signum``
    becomes ``gx.signum: `beta` must be in [0, 1)``.
    """
    try:
        yield
    except (ValueError, TypeError) as e:
        msg = re.sub(r"^gx\.\w+:", f"gx.{owner}:", str(e), count=1)
        for old, new in renames.items():
            msg = msg.replace(f"`{old}`", f"`{new}`")
        raise type(e)(msg) from None
