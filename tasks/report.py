"""The report task: the run's figures and cluster prototypes, copied beside its manifest, and
Prefect artifacts (a summary, the cluster and metric tables, the figures)."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from tasks.common import STAGE_TASK, open_store
from tsatlas import catalog, report
from tsatlas.catalog import StageRef
from tsatlas.stage import run_stage


@task(name="report", **STAGE_TASK)
def report_task(run_id: str, refs: dict[str, StageRef], seed: int, root: str,
                credentials: str | None = None) -> dict[str, Any]:
    """Draw the figures (a stage of their own, so an unchanged run reuses them), copy them beside
    the run's manifest and publish them. Returns the manifest's plots and prototypes entries."""
    store = open_store(root, credentials)

    def compute(w):
        win, channels, _ = catalog.read_windows(store, refs["windows"])
        emb, km = catalog.read_embeddings(store, refs["embed"]), catalog.read_kmeans(store, refs["cluster"])
        images, proto = report.figures(
            catalog.read_model(store, refs["train"]), win, channels, emb.z, emb.recon_error, refs["embed"].threshold,
            catalog.read_assignments(store, refs["cluster"]), km.centroids, catalog.read_synthetic(store, refs["generate"]),
            catalog.read_history(store, refs["train"]), seed, refs["cluster"].metrics.get("silhouette_by_k"))
        catalog.write_figures(w, images, catalog.prototypes_table(proto, km.sizes))
        return catalog.finish(w, catalog.PROTOTYPES, len(proto))

    figures = run_stage(store, "report", [refs[s] for s in sorted(refs)], {"seed": seed}, compute)
    files = catalog.publish_run_files(store, run_id, figures)
    uris = {n: p["uri"] for n, p in files["plots"].items()}
    links = {n: p.pop("url") for n, p in files["plots"].items()}  # presigned URLs expire: not kept in the manifest
    facts = {"ingest": refs["ingest"].info, "shape": refs["windows"].shape,
             **{s: refs[s].facts["metrics"] for s in ("train", "cluster", "generate")}}
    create_markdown_artifact(report.summary_markdown(run_id, facts, uris, links), key="tsatlas-summary",
                             description=f"run {run_id}")
    create_table_artifact([{"cluster": i, "windows": s} for i, s in enumerate(facts["cluster"]["sizes"])],
                          key="tsatlas-clusters", description="windows per cluster")
    create_table_artifact(report.flat_metrics(facts), key="tsatlas-metrics", description="run metrics")
    create_markdown_artifact(report.figures_markdown(catalog.read_figures(store, figures), links), key="tsatlas-figures",
                             description=f"figures of run {run_id}")
    return files
