"""Grad mode: whether operations record a graph (``no_grad`` turns it off, ``enable_grad`` back on)."""

from __future__ import annotations

import contextlib
from typing import Any

_grad_enabled = True


def is_grad_enabled() -> bool:
    """True unless inside a :func:`no_grad` block."""
    return _grad_enabled


class no_grad(contextlib.ContextDecorator):
    """Context manager (and decorator) in which operations build no graph: inference, optimizer steps."""

    def __enter__(self) -> no_grad:
        global _grad_enabled
        self._prev = _grad_enabled
        _grad_enabled = False
        return self

    def __exit__(self, *exc: Any) -> None:
        global _grad_enabled
        _grad_enabled = self._prev


class enable_grad(contextlib.ContextDecorator):
    """Turn graph building back on inside a :func:`no_grad` block."""

    def __enter__(self) -> enable_grad:
        global _grad_enabled
        self._prev = _grad_enabled
        _grad_enabled = True
        return self

    def __exit__(self, *exc: Any) -> None:
        global _grad_enabled
        _grad_enabled = self._prev
