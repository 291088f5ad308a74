"""The run manifest: what every stage wrote, with checksums, the resolved config and metrics."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from prefect import task

from tasks.common import STAGE_TASK, open_store
from tsatlas.config import PipelineConfig
from tsatlas.storage import check_key, code_version

STAGES = ("ingest", "windows", "train", "embed", "cluster", "generate")


def new_run_id() -> str:
    """Sortable and unique: UTC time plus the Prefect flow run id (or a random one outside a flow)."""
    try:
        from prefect.runtime import flow_run
        rid = str(flow_run.id or "") or uuid.uuid4().hex
    except ImportError:  # pragma: no cover
        rid = uuid.uuid4().hex
    return f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{rid.replace('-', '')[:8]}"


def build_manifest(run_id: str, data: str, config: PipelineConfig, refs: dict[str, dict[str, Any]],
                   report: dict[str, Any] | None = None) -> dict[str, Any]:
    stages = {s: {k: refs[s][k] for k in ("uri", "sha256", "rows", "key", "prefix")} | {"files": refs[s]["files"]} for s in STAGES}
    return {
        "run_id": run_id,
        "flow": "atlas",
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "data": data,
        "config": config.model_dump(mode="json"),
        "code_version": code_version(),
        "stages": stages,
        "summary": {"ingest": refs["ingest"]["info"], "windows": {"shape": refs["windows"]["shape"],
                                                                   "skipped_series": refs["windows"]["skipped_series"]},
                    "embed": {"anomaly_threshold": refs["embed"]["threshold"]}},
        "metrics": {s: refs[s]["metrics"] for s in ("train", "cluster", "generate")},
        **(report or {}),
    }


@task(name="manifest", **STAGE_TASK)
def manifest_task(run_id: str, data: str, config: PipelineConfig, refs: dict[str, dict[str, Any]],
                  report: dict[str, Any] | None, root: str,
                  credentials: str | None = None) -> dict[str, Any]:
    """Write runs/<run_id>/manifest.json last, so a manifest exists only for a run whose stages all finished."""
    store = open_store(root, credentials)
    manifest = build_manifest(run_id, data, config, refs, report)
    key = check_key(f"runs/{run_id}/manifest.json")
    store.put_json(key, manifest)
    manifest["manifest_uri"] = store.uri(key)
    return manifest
