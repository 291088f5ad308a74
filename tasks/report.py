"""Report: the run's figures (PNG beside its manifest), the decoded cluster prototypes, and
Prefect artifacts (a markdown summary, tables, and the figures)."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import pyarrow as pa
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from tasks.cluster import load_centroids
from tasks.common import STAGE_TASK, logger, open_store
from tasks.embed import load_embeddings
from tasks.train import load_model
from tasks.windows import load_windows
from tsatlas import plots
from tsatlas.errors import StorageError
from tsatlas.report import render
from tsatlas.storage import Store, check_key, code_version, digest
from tsatlas.tables import fixed_list

MAX_MEMBERS = 2000  # windows per cluster drawn in bands and overlays


def synthetic_windows(store: Store, ref: dict[str, Any], channels: list[str], steps: int) -> tuple[np.ndarray, np.ndarray]:
    """The synthetic series table -> (first `steps` of each series (n, steps, C), cluster (n,))."""
    t = store.read_stage_table(ref, "synthetic.parquet")
    cluster = t.column("cluster").to_numpy()
    L = int(ref["rows"] // max(1, len(np.unique(t.column("series_id").to_numpy(zero_copy_only=False)))))
    X = np.column_stack([t.column(c).to_numpy() for c in channels]).reshape(-1, L, len(channels))
    return X[:, :steps], cluster[::L]


def figures(store: Store, refs: dict[str, dict[str, Any]], seed: int = 0) -> tuple[dict[str, bytes], pa.Table]:
    """Every figure of a run (name -> PNG) and the prototypes table."""
    rng = np.random.default_rng(seed)
    w, channels, _ = load_windows(store, refs["windows"])
    _, Z, _, _ = load_embeddings(store, refs["embed"])
    emb = store.read_stage_table(refs["embed"], "embeddings.parquet", columns=["recon_error"])
    labels = store.read_stage_table(refs["cluster"], "windows.parquet", columns=["cluster"]).column("cluster").to_numpy()
    cz, sizes, _, _ = load_centroids(store, refs["cluster"])
    k = len(cz)
    ae = load_model(store, refs["train"])
    T = w.X.shape[1]
    proto_std = ae.decode(cz, steps=T)  # (k, T, C) standardised
    real = w.original_units()
    members, proto = [], np.empty_like(proto_std)
    for c in range(k):
        idx = np.flatnonzero(labels == c)
        proto[c] = proto_std[c] * w.scale[idx].mean(0) + w.loc[idx].mean(0)
        members.append(real[rng.choice(idx, min(len(idx), MAX_MEMBERS), replace=False)])
    synth, s_cl = synthetic_windows(store, refs["generate"], channels, T)
    history = store.read_stage_table(refs["train"], "history.parquet").to_pylist()
    images = {
        "loss": plots.loss_curves(history),
        "embeddings": plots.embedding_map(Z, labels, seed),
        "prototypes": plots.prototypes(proto, members, channels),
        "real_vs_synthetic": plots.real_vs_synthetic(members, [synth[s_cl == c] for c in range(k)], channels, seed=seed),
        "errors": plots.error_histogram(emb.column("recon_error").to_numpy(), refs["embed"]["threshold"]),
    }
    table = pa.table({"cluster": pa.array(np.arange(k, dtype=np.int32)), "size": pa.array(sizes),
                      "prototype": fixed_list(proto)})
    return images, table


def publish(run_id: str, refs: dict[str, dict[str, Any]], images: dict[str, bytes], plot_uris: dict[str, str]) -> None:
    """Prefect artifacts: a summary, the cluster and metric tables, and the figures."""
    tr, cl, ge = refs["train"]["metrics"], refs["cluster"]["metrics"], refs["generate"]["metrics"]
    n, T, C = refs["windows"]["shape"]
    disc = ge.get("discriminative")
    summary = "\n".join([
        f"# tsatlas run `{run_id}`",
        f"- **data**: {refs['ingest']['info']['rows_in']} rows, {refs['ingest']['info']['series']} series; "
        f"{n} windows of {T} steps x {C} channels",
        f"- **training**: {tr['epochs']} epochs on {tr['device']}, validation loss {tr['val_loss']:.4f}",
        f"- **clusters**: k={cl['k']}, sizes {cl['sizes']}, silhouette {cl['silhouette']:.3f}",
        f"- **generation**: {ge['n']} series ({ge['method']})"
        + (f", discriminative {disc['mean']:.3f} ± {disc['std']:.3f}" if disc else ""),
        "", "Figures: " + ", ".join(f"[{k}]({u})" for k, u in plot_uris.items()),
    ])
    create_markdown_artifact(summary, key="tsatlas-summary", description=f"run {run_id}")
    create_table_artifact([{"cluster": i, "windows": s} for i, s in enumerate(cl["sizes"])], key="tsatlas-clusters",
                          description="windows per cluster")
    flat = {f"train.{k}": v for k, v in tr.items()} | {f"cluster.{k}": v for k, v in cl.items() if not isinstance(v, (list, dict))}
    flat |= {f"generate.{k}": (v["mean"] if isinstance(v, dict) and "mean" in v else v) for k, v in ge.items()
             if not isinstance(v, list)}
    create_table_artifact([{"metric": k, "value": v} for k, v in flat.items()], key="tsatlas-metrics",
                          description="run metrics")
    create_markdown_artifact(figures_markdown(images, plot_uris), key="tsatlas-figures",
                             description=f"figures of run {run_id}")


INLINE_BYTES = 1_000_000  # Prefect's server refuses to publish events above ~1.5 MB


def figures_markdown(images: dict[str, bytes], uris: dict[str, str], budget: int = INLINE_BYTES) -> str:
    """The figures as markdown: inlined as base64 PNGs in order while they fit in `budget` bytes,
    linked to their stored file after that (many clusters and channels make big figures)."""
    parts, used = [], 0
    for name, png in images.items():
        data = base64.b64encode(png).decode()
        if used + len(data) <= budget:
            parts.append(f"## {name}\n![{name}](data:image/png;base64,{data})")
            used += len(data)
        else:
            parts.append(f"## {name}\n[{name}.png]({uris[name]}) ({len(png) // 1024} KB, linked: too large to inline)")
    return "\n\n".join(parts)


@task(name="report", **STAGE_TASK)
def report_task(run_id: str, refs: dict[str, dict[str, Any]], seed: int, root: str,
                credentials: str | None = None) -> dict[str, Any]:
    """Write the run's figures and prototypes beside its manifest and publish Prefect artifacts.

    The figures are themselves a content-addressed stage (keyed by the stages they draw), so an
    unchanged run copies them instead of drawing them again.
    """
    store = open_store(root, credentials)
    key = digest("report", [refs[s]["sha256"] for s in sorted(refs)], seed, code_version())
    if (done := store.stage_done("report", key)) is None:
        images, protos = figures(store, refs, seed)
        with store.stage("report", key) as out:
            for name, png in images.items():
                out.put_bytes(f"{name}.png", png)
            out.put_table("prototypes.parquet", protos)
            done = out.finish("prototypes.parquet", len(protos))
    names = [f.removesuffix(".png") for f in done["files"] if f.endswith(".png")]
    images = {name: store.read_stage_bytes(done, f"{name}.png") for name in names}
    result: dict[str, Any] = {"plots": {}}
    for name, png in images.items():
        k = check_key(f"runs/{run_id}/plots/{name}.png")
        result["plots"][name] = {"uri": store.uri(k), "sha256": store.put_bytes(k, png)}
    k = check_key(f"runs/{run_id}/prototypes.parquet")
    result["prototypes"] = {"uri": store.uri(k), "rows": done["rows"],
                            "sha256": store.put_bytes(k, store.read_stage_bytes(done, "prototypes.parquet"))}
    publish(run_id, refs, images, {n: p["uri"] for n, p in result["plots"].items()})
    logger().info("report: %d figures under %s", len(images), store.uri(f"runs/{run_id}/plots"))
    return result


def latest_run(store: Store) -> str:
    """The newest run id under the root (run ids sort by time)."""
    try:
        runs = sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in store.fs.ls(store.path("runs"), detail=False))
    except FileNotFoundError:
        runs = []
    if not runs:
        raise StorageError(f"{store.uri('runs')}: no runs yet")
    return runs[-1]


def write_report(store: Store, run_id: str, out: str | None = None) -> str:
    """Render runs/<run_id>/report.html from the manifest and its figures (checksums verified).

    Returns:
        The report's URI in the store.
    """
    run_id = latest_run(store) if run_id == "latest" else run_id
    key = check_key(f"runs/{run_id}/manifest.json")
    if not store.exists(key):
        raise StorageError(f"{store.uri(key)}: no such run")
    manifest = store.get_json(key)
    images = {name: store.get_bytes(f"runs/{run_id}/plots/{name}.png", p["sha256"])
              for name, p in manifest.get("plots", {}).items()}
    page = render(manifest, images).encode()
    report_key = check_key(f"runs/{run_id}/report.html")
    store.put_bytes(report_key, page)
    if out:
        with open(out, "wb") as f:
            f.write(page)
    return store.uri(report_key)
