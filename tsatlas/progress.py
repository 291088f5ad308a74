"""Progress of long stage work (training epochs, evaluation fits) for whoever shows it.

The core calls `report(stage, done, total)`; by default nothing happens. The command line, at a
terminal, installs a sink that draws one bar per stage (rich, which Prefect already ships);
Prefect's progress artifact and the per-epoch log lines are fed separately.
"""

from __future__ import annotations

from collections.abc import Callable

_sink: Callable[[str, int, int], None] | None = None


def set_sink(sink: Callable[[str, int, int], None] | None) -> None:
    """Receive (stage, done, total) for every step of long work; None stops it."""
    global _sink
    _sink = sink


def report(stage: str, done: int, total: int) -> None:
    if _sink is not None:
        _sink(stage, done, total)
