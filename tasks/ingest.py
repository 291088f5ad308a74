"""The ingest task: read, validate and regularise the input file into the series table."""

from __future__ import annotations

from prefect import task

from tasks.common import STAGE_TASK, block_options, open_store, stage_state
from tsatlas import catalog
from tsatlas.config import IngestConfig
from tsatlas.ingest import fingerprint, ingest_to_file
from tsatlas.stage import run_stage
from tsatlas.storage import reveal


@task(name="ingest", **STAGE_TASK)
def ingest_task(data: str, root: str, cfg: IngestConfig, credentials: str | None = None) -> catalog.IngestRef:
    """Ingest `data` into the store; reused when the same file and config were ingested before."""
    store, opts, src = open_store(root, credentials), block_options(credentials), reveal(data)

    def compute(w):
        with w.local_file(catalog.SERIES) as path:
            info = ingest_to_file(src, cfg, path, opts)
        return catalog.finish(w, catalog.SERIES, info["rows"], info=info)

    return stage_state(run_stage(store, "ingest", [fingerprint(src, opts)], cfg.model_dump(), compute))
