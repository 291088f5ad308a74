"""A self-contained HTML report of one run: the manifest's numbers and the run's figures
inlined as base64 PNG, no scripts, no network."""

from __future__ import annotations

import base64
import html
from typing import Any

CAPTIONS = {
    "loss": "Training and validation loss of the recurrent autoencoder. The model kept is the one with the "
            "lowest validation loss; the gap between the curves shows how much it overfits.",
    "embeddings": "Every window's embedding z, projected to two dimensions and coloured by its K-means cluster. "
                  "Well separated colours mean the clusters are distinct shapes, not arbitrary cuts.",
    "prototypes": "What each cluster looks like: its centroid decoded back into a window (black), over the "
                  "spread of the real windows assigned to it (band: 10th to 90th percentile).",
    "real_vs_synthetic": "Synthetic windows against real ones, per cluster: a few examples of the first channel "
                         "(left) and the mean autocorrelation of each channel (right). Matching curves mean the "
                         "generator reproduces the temporal structure.",
    "errors": "How well each window is reconstructed. Windows right of the threshold (the 99th percentile) are "
              "flagged as unusual; `tsatlas score` uses the same threshold on new data.",
}
TITLES = {"loss": "Training", "embeddings": "Embedding map", "prototypes": "Cluster prototypes",
          "real_vs_synthetic": "Real vs synthetic", "errors": "Reconstruction errors"}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict) and set(v) == {"mean", "std"}:
        return f"{v['mean']:.4g} ± {v['std']:.2g}"
    return html.escape(str(v))


def _table(rows: list[tuple[str, Any]]) -> str:
    return "<table>" + "".join(f"<tr><th>{html.escape(k)}</th><td>{_fmt(v)}</td></tr>" for k, v in rows) + "</table>"


def render(manifest: dict[str, Any], images: dict[str, bytes]) -> str:
    """The report page for `manifest`, with `images` (name -> PNG bytes) inlined."""
    m = manifest
    ing, win = m["summary"]["ingest"], m["summary"]["windows"]
    tr, cl, ge = m["metrics"]["train"], m["metrics"]["cluster"], m["metrics"]["generate"]
    n, T, C = win["shape"]
    sections = []
    for name in ("loss", "embeddings", "prototypes", "real_vs_synthetic", "errors"):
        if name in images:
            b64 = base64.b64encode(images[name]).decode()
            sections.append(f'<section><h2>{TITLES[name]}</h2><p>{CAPTIONS[name]}</p>'
                            f'<img alt="{TITLES[name]}" src="data:image/png;base64,{b64}"></section>')
    data_rows = [("input", m["data"]), ("rows in", ing["rows_in"]), ("series", ing["series"]),
                 ("channels", ", ".join(ing["channels"])), ("gaps filled", ing["gaps_filled"]),
                 ("windows", f"{n} of {T} steps x {C} channels")]
    train_rows = [("epochs", tr["epochs"]), ("device", tr["device"]), ("final train loss", tr["train_loss"]),
                  ("final validation loss", tr["val_loss"]), ("best validation loss", tr["best_val_loss"])]
    cluster_rows = [("k", cl["k"]), ("sizes", cl["sizes"]), ("silhouette (-1..1, higher is better)", cl["silhouette"]),
                    ("Davies-Bouldin (lower is better)", cl["davies_bouldin"]),
                    ("Calinski-Harabasz (higher is better)", cl["calinski_harabasz"])]
    cluster_rows += [(k.upper() + " vs labels", cl[k]) for k in ("ari", "nmi") if k in cl]
    gen_rows = [("method", ge["method"]), ("synthetic series", ge["n"]), ("per cluster", ge["per_cluster"])]
    gen_rows += [(label, ge[k]) for k, label in (
        ("discriminative", "discriminative |acc - 0.5| (0 is best)"), ("predictive", "predictive MAE, train synthetic"),
        ("predictive_real", "predictive MAE, train real (reference)"), ("marginal", "marginal Wasserstein"),
        ("marginal_real_floor", "marginal, real vs real (floor)"), ("autocorrelation", "autocorrelation distance"))
        if k in ge]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tsatlas run {html.escape(m['run_id'])}</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}}
h1{{margin-bottom:0}} .sub{{color:#666;margin-top:.2em}} img{{max-width:100%;border:1px solid #eee}}
table{{border-collapse:collapse;margin:.5em 0 1.5em}} th,td{{text-align:left;padding:.2em .8em;border-bottom:1px solid #eee}}
th{{font-weight:600;color:#444}} .grid{{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:1em}}
</style></head><body>
<h1>tsatlas run {html.escape(m['run_id'])}</h1>
<p class="sub">created {html.escape(m['created'])} · code {html.escape(m['code_version'])}</p>
<p>tsatlas cut the input series into windows, trained a recurrent autoencoder to compress each window into a
short vector, grouped those vectors with K-means, and generated synthetic windows for each group. The numbers
below summarise each step; the figures show what was found.</p>
<div class="grid">
<div><h3>Data</h3>{_table(data_rows)}</div>
<div><h3>Training</h3>{_table(train_rows)}</div>
<div><h3>Clusters</h3>{_table(cluster_rows)}</div>
<div><h3>Generation</h3>{_table(gen_rows)}</div>
</div>
{''.join(sections)}
<h2>Files</h2>
{_table([(s, v['uri']) for s, v in m['stages'].items()])}
</body></html>
"""
