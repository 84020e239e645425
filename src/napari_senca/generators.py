"""Driving progress generators (training, encoding, embedding) to their return value.

The core's long steps are generators that yield progress and *return* their
result (stardist-napari style). :func:`drain` runs one to the end for callers
without a GUI; :func:`relay` re-yields its progress, translated, inside another
generator. Both close the generator however the loop ends, so its clean-up runs
at once (Ctrl-C, an exception in a callback, a stopped GUI worker).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, TypeVar

__all__ = ["drain", "relay"]

R = TypeVar("R")


def drain(gen: Generator[Any, None, R], callback: Callable[[Any], None] | None = None) -> R:
    """Run ``gen`` to the end, passing each yielded item to ``callback``; return its return value."""
    try:
        while True:
            try:
                item = next(gen)
            except StopIteration as stop:
                return stop.value
            if callback is not None:
                callback(item)
    finally:
        gen.close()


def relay(gen: Generator[Any, None, R], translate: Callable[[Any], Any]) -> Generator[Any, None, R]:
    """Yield ``translate(item)`` for each item of ``gen`` (``None`` skips it); return ``gen``'s value.

    Use as ``result = yield from relay(gen, translate)``.
    """
    try:
        while True:
            try:
                item = next(gen)
            except StopIteration as stop:
                return stop.value
            out = translate(item)
            if out is not None:
                yield out
    finally:
        gen.close()
