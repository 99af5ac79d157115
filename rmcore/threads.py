"""Tiny-tensor torch code on one intra-op thread: the Loss Playground's sections share it."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def one_thread() -> Iterator[None]:
    """Run tiny-tensor torch code on one intra-op thread (this thread only; OpenMP's setting
    is per thread). On a busy 2-core machine OpenMP's barrier made a 2-element BCE call take
    ~10 ms instead of 0.1 ms; nothing this small gains from a second thread."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
