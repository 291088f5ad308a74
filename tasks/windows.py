"""The windows task: cut the series into standardised windows."""

from __future__ import annotations

from prefect import task

from tasks.common import STAGE_TASK, open_store, stage_state
from tsatlas import catalog
from tsatlas.config import WindowsConfig
from tsatlas.stage import run_stage
from tsatlas.windowing import write_windows


@task(name="windows", **STAGE_TASK)
def windows_task(ingested: catalog.IngestRef, root: str, cfg: WindowsConfig,
                 credentials: str | None = None, source: str | None = None) -> catalog.WindowsRef:
    """Windows of every series and the fitted scaler; reused when already done. `source`: the
    input's name in messages (the user's data path; default: the ingested table in the store)."""
    store = open_store(root, credentials)

    def compute(w):
        src = catalog.series_path(store, ingested)
        with w.local_file(catalog.WINDOWS) as path:
            facts, scaler = write_windows(src, ingested.channels, cfg, path, source=source or ingested.uri)
        catalog.write_scaler(w, scaler)
        return catalog.finish(w, catalog.WINDOWS, facts["shape"][0], **facts)

    return stage_state(run_stage(store, "windows", [ingested], cfg.model_dump(), compute))
