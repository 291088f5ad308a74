"""The manifest task: written last, so a manifest exists only for a run whose stages all finished."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from prefect import task
from prefect.runtime import flow_run

from tasks.common import STAGE_TASK, open_store
from tsatlas import catalog
from tsatlas.catalog import StageRef
from tsatlas.config import PipelineConfig
from tsatlas.storage import code_version


def new_run_id() -> str:
    """Sortable and unique: UTC time plus the Prefect flow run id (or a random one outside a flow)."""
    rid = str(flow_run.id or "") or uuid.uuid4().hex
    return f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{rid.replace('-', '')[:8]}"


@task(name="manifest", **STAGE_TASK)
def manifest_task(run_id: str, data: str, config: PipelineConfig, refs: dict[str, StageRef],
                  report: dict[str, Any] | None, root: str, credentials: str | None = None) -> dict[str, Any]:
    """Write runs/<run_id>/manifest.json and return it (with its URI)."""
    store = open_store(root, credentials)
    manifest = catalog.build_manifest(run_id, data, config.model_dump(mode="json"), refs, code_version(), report)
    return {**manifest, "manifest_uri": catalog.write_manifest(store, manifest)}
