"""run_stage: the one skeleton every stage shares.

    key -> find a published output -> verify its checksums -> reuse it, or compute it in a
    fresh attempt folder that is published only when the computation returns.

A stage's key hashes its inputs' checksums, its own config, and the version of the code that
stage runs (a hash of its own modules), so editing a figure caption recomputes only the report.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from tsatlas import __version__, catalog
from tsatlas.catalog import StageRef
from tsatlas.storage import Store, StageWriter, digest

log = logging.getLogger(__name__)

# The core modules whose code decides each stage's output (catalog.py, which fixes the file
# formats, counts for all of them).
STAGE_MODULES: dict[str, tuple[str, ...]] = {
    "ingest": ("ingest", "tables"),
    "windows": ("windowing", "tables"),
    "train": ("autoencoder", "nn", "training", "trainer", "clustering"),
    "embed": ("autoencoder", "nn", "embedding"),
    "cluster": ("clustering", "metrics"),
    "generate": ("generation", "gan", "timegan", "metrics", "autoencoder", "nn"),
    "report": ("report", "plots"),
}


@cache
def stage_version(stage: str) -> str:
    """Package version plus a hash of the modules in STAGE_MODULES[stage] and catalog.py."""
    here = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for name in sorted({"catalog", *STAGE_MODULES[stage]}):
        h.update(name.encode())
        h.update((here / f"{name}.py").read_bytes())
    return f"{__version__}+{h.hexdigest()[:12]}"


def _identity(x: Any) -> Any:
    return x.sha256 if isinstance(x, StageRef) else x


def stage_key(stage: str, inputs: Sequence[Any], config: Any) -> str:
    """The content address of a stage output.

    Args:
        inputs: upstream references (their sha256 counts) or plain identities (an input file's fingerprint).
        config: JSON-serialisable: the stage's config section, seed, and whatever else changes its output.
    """
    return digest(stage, [_identity(i) for i in inputs], config, stage_version(stage))


def run_stage(store: Store, stage: str, inputs: Sequence[Any], config: Any,
              compute: Callable[[StageWriter], StageRef | None]) -> StageRef | None:
    """The stage's output: reused when published before with files that still match their
    checksums, else computed by `compute(writer)` (which returns catalog.finish(writer, ...)).

    The output comes back with the seconds this took, and `reused=True` when it was found. A corrupt or missing file makes the stage
    compute again (never reuse, never an error); an attempt that raises leaves nothing behind (StageWriter removes its folder).
    """
    key = stage_key(stage, inputs, config)
    t0 = time.perf_counter()
    ref = catalog.find(store, stage, key)
    if ref is not None:
        problem = catalog.verify(store, ref)
        if problem is None:
            seconds = time.perf_counter() - t0
            log.info("%-8s reused (%.1f s)", stage, seconds)
            return dataclasses.replace(ref, reused=True, seconds=seconds)
        log.warning("%s: the stored output fails verification (%s): computing it again", stage, problem)
    log.info("%-8s started", stage)
    with store.stage(stage, key) as writer:
        ref = compute(writer)
    seconds = time.perf_counter() - t0
    log.info("%-8s done in %.1f s", stage, seconds)
    return None if ref is None else dataclasses.replace(ref, seconds=seconds)
