"""A hook through which a running flow reports progress to whoever started it (the CLI's bar).

Flow parameters must stay plain data for deployments, so the listener is registered here, in
the process, rather than passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

Listener = Callable[[int, int, Mapping[str, int]], None]
_listeners: list[Listener] = []


def add_listener(listener: Listener) -> None:
    _listeners.append(listener)


def remove_listener(listener: Listener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def report(done: int, total: int, counts: Mapping[str, int]) -> None:
    for listener in list(_listeners):
        listener(done, total, counts)
