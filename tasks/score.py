"""The score task: new data through an already trained run; writes scores/<score_id>/."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from tasks.common import STAGE_TASK, block_options, logger, open_store
from tsatlas import catalog
from tsatlas.config import WindowsConfig
from tsatlas.errors import InputError
from tsatlas.ingest import ingest_table
from tsatlas.scoring import align_to_grid, check_step, reading_config, score_series
from tsatlas.storage import redact, reveal


@task(name="score", **STAGE_TASK)
def score_task(data: str, model: str, root: str, credentials: str | None = None, device: str = "auto") -> dict[str, Any]:
    """Score `data` with a trained run (`model`: a run id or 'latest'): cluster, distance,
    reconstruction error and anomaly flag per window, and the cluster mix against training."""
    store = open_store(root, credentials)
    manifest = catalog.read_manifest(store, model)
    cfg, ref = manifest["config"], lambda s: catalog.stage_ref(manifest, s)
    trained = manifest["summary"]["ingest"]["channels"]
    ing = ingest_table(reveal(data), reading_config(cfg["ingest"], manifest["summary"]["ingest"]), block_options(credentials))
    if ing.channels != trained:
        raise InputError(f"{data}: channels {ing.channels} differ from the trained model's {trained}")
    check_step(manifest["summary"]["ingest"], ing.info, data)
    frame = align_to_grid(ing.frame, manifest["summary"]["windows"].get("grid"), data)
    table, summary = score_series(frame, ing.channels, WindowsConfig(**cfg["windows"]),
                                  catalog.read_scaler(store, ref("windows")), catalog.read_model(store, ref("train"), device),
                                  catalog.read_kmeans(store, ref("cluster")), manifest["summary"]["embed"]["anomaly_threshold"],
                                  data)
    score_id = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    result = catalog.write_scores(store, score_id, table, {"model_run": manifest["run_id"], "data": data, **summary})
    logger().info("score: %d windows, %d anomalies, cluster mix shift (total variation) %.3f",
                  summary["windows"], summary["anomalies"], summary["total_variation"])
    create_markdown_artifact(
        f"# tsatlas score `{score_id}`\n- **data**: {redact(data)}\n- **model**: run `{manifest['run_id']}`\n"
        f"- **windows**: {summary['windows']}, **anomalies**: {summary['anomalies']} above the training threshold "
        f"{summary['threshold']:.4f}\n- **cluster mix shift** (total variation): {summary['total_variation']:.3f}\n"
        f"- **scores**: `{result['uri']}`", key="tsatlas-score-summary", description=f"score {score_id}")
    create_table_artifact([{"cluster": c, "share in training": a, "share in this data": b}
                           for c, (a, b) in enumerate(zip(summary["train_share"], summary["new_share"]))],
                          key="tsatlas-score-clusters", description="cluster mix: training vs the scored data")
    return result
