"""Python's cyclic garbage collector paused around work that builds many objects which
live on (an analysis, a parsed configuration): its passes over the growing heap find
nothing to free and only cost time. Standard library only, below every stage."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def paused(*, restore: bool = True) -> Iterator[None]:
    """Disable the cyclic collector for the block; afterwards enable it again if it was
    enabled before and `restore` (False: a process that ends right after the block would
    only spend its first collection walking what it is about to drop)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled and restore:
            gc.enable()
