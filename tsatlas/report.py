"""What a person looks at after a run: its figures (drawn from the stage outputs), the markdown
that Prefect's artifacts show, and a self-contained HTML report (the manifest's numbers and the
figures inlined as base64 PNG, no scripts, no network)."""

from __future__ import annotations

import base64
import html
from typing import Any

import numpy as np
import pyarrow as pa

from tsatlas import plots

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
    "k_choice": "With cluster.k=auto, K-means is fitted for every k from cluster.k_min to cluster.k_max on a "
                "sample of the windows, and the k with the highest silhouette is kept (dotted line).",
    "errors": "How well each window is reconstructed. Windows right of the threshold (the 99th percentile) are "
              "flagged as unusual; `tsatlas score` uses the same threshold on new data.",
}
TITLES = {"loss": "Training", "embeddings": "Embedding map", "prototypes": "Cluster prototypes",
          "real_vs_synthetic": "Real vs synthetic", "k_choice": "Choosing k", "errors": "Reconstruction errors"}


MAX_MEMBERS = 2000  # windows per cluster drawn in bands and overlays


def synthetic_windows(table: pa.Table, channels: list[str], steps: int) -> tuple[np.ndarray, np.ndarray]:
    """The synthetic series table -> (first `steps` of each series (n, steps, C), cluster (n,))."""
    cluster = table.column("cluster").to_numpy()
    ids = table.column("series_id").to_numpy(zero_copy_only=False)
    L = int(len(table) // max(1, len(np.unique(ids))))
    cols = [c for c in table.column_names if c not in ("series_id", "timestamp", "cluster")]
    X = np.column_stack([table.column(c).to_numpy() for c in cols]).reshape(-1, L, len(channels))
    return X[:, :steps], cluster[::L]


def figures(ae: Any, w: Any, channels: list[str], Z: np.ndarray, recon_error: np.ndarray, threshold: float,
            labels: np.ndarray, centroids: np.ndarray, synthetic: pa.Table, history: list[dict[str, Any]],
            seed: int = 0, silhouette_by_k: dict[str, float] | None = None) -> tuple[dict[str, bytes], np.ndarray]:
    """Every figure of a run (name -> PNG) and the decoded prototypes (k, T, C) in original units.

    Args:
        ae: the fitted autoencoder; w: the windows (catalog.read_windows); Z, recon_error: the
            embeddings; labels: (n,) clusters; centroids: (k, D) in z units.
    """
    rng = np.random.default_rng(seed)
    k, T = len(centroids), w.X.shape[1]
    proto_std = ae.decode(centroids, steps=T)  # (k, T, C) standardised
    members, proto = [], np.empty_like(proto_std)
    for c in range(k):
        idx = np.flatnonzero(labels == c)
        proto[c] = proto_std[c] * w.scale[idx].mean(0) + w.loc[idx].mean(0)
        pick = np.sort(rng.choice(idx, min(len(idx), MAX_MEMBERS), replace=False))  # only these leave the memory map
        members.append(w.X[pick] * w.scale[pick][:, None, :] + w.loc[pick][:, None, :])
    synth, s_cl = synthetic_windows(synthetic, channels, T)
    images = {
        "loss": plots.loss_curves(history),
        "embeddings": plots.embedding_map(Z, labels, seed),
        "prototypes": plots.prototypes(proto, members, channels),
        "real_vs_synthetic": plots.real_vs_synthetic(members, [synth[s_cl == c] for c in range(k)], channels, seed=seed),
        "errors": plots.error_histogram(recon_error, threshold),
    }
    if silhouette_by_k:  # cluster.k=auto
        images["k_choice"] = plots.k_choice(silhouette_by_k, k)
    return images, proto


INLINE_BYTES = 1_000_000  # Prefect's server refuses to publish events above ~1.5 MB


def shrink_png(png: bytes, limit: int) -> bytes:
    """The PNG itself when it has at most `limit` bytes, else a copy that has: first the same
    pixels in 256 colours (line plots lose nothing visible and shrink 3-4x), then, while that is
    still too large, downscaled (each side by the square root of the ratio, then by 0.8)."""
    if len(png) <= limit:
        return png
    import io

    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB")
    scale = 1.0
    while True:
        size = (max(1, int(img.width * scale)), max(1, int(img.height * scale)))
        small = img if scale == 1.0 else img.resize(size, Image.LANCZOS)
        buf = io.BytesIO()
        small.quantize(256, method=Image.Quantize.FASTOCTREE).save(buf, format="PNG")
        if buf.tell() <= limit or min(size) == 1:
            return buf.getvalue()
        scale *= min(0.8, (limit / buf.tell()) ** 0.5)


def figures_markdown(images: dict[str, bytes], links: dict[str, str | None], budget: int = INLINE_BYTES) -> str:
    """Every figure inlined as a base64 PNG (those larger than their share of `budget` bytes
    compressed to fit, so the whole artifact stays publishable), each with a link to its
    full-size file where the browser can reach one (`links[name]`: e.g. a presigned S3 URL)."""
    share = int(budget / max(1, len(images)) * 3 / 4)  # base64 takes 4 bytes for 3
    parts = []
    for name, png in images.items():
        small = shrink_png(png, share)
        note = " (compressed to fit)" if len(small) < len(png) else ""
        link = f"\n\n[full size]({links[name]})" if links.get(name) else ""
        parts.append(f"## {name}{note}\n![{name}](data:image/png;base64,{base64.b64encode(small).decode()}){link}")
    return "\n\n".join(parts)


def summary_markdown(run_id: str, facts: dict[str, Any], plot_uris: dict[str, str],
                     links: dict[str, str | None] | None = None) -> str:
    """The run summary that Prefect shows as a markdown artifact.

    Args:
        facts: {"ingest": info, "shape": [n, T, C], "train"/"cluster"/"generate": metrics}.
        plot_uris: where the figures are stored; links: URLs a browser can open, where there are
            (a local path is shown as text: the UI cannot open it).
    """
    tr, cl, ge = facts["train"], facts["cluster"], facts["generate"]
    n, T, C = facts["shape"]
    disc = ge.get("discriminative")
    return "\n".join([
        f"# tsatlas run `{run_id}`",
        f"- **data**: {facts['ingest']['rows_in']} rows, {facts['ingest']['series']} series; "
        f"{n} windows of {T} steps x {C} channels",
        f"- **training**: {tr['epochs']} epochs on {tr['device']}, validation loss {tr['val_loss']:.4f}",
        f"- **clusters**: k={cl['k']}, sizes {cl['sizes']}, silhouette {cl['silhouette']:.3f}",
        f"- **stability** (adjusted Rand, 1 = identical): {_stability_text(cl)}",
        f"- **generation**: {ge['n']} series ({ge['method']})"
        + (f", discriminative {disc['mean']:.3f} ± {disc['std']:.3f}" if disc else ""),
        "", "Figures (also in the `tsatlas-figures` artifact): "
        + ", ".join(f"[{k}]({(links or {})[k]})" if (links or {}).get(k) else f"{k} `{u}`" for k, u in plot_uris.items()),
    ])


def _stability_text(cl: dict[str, Any]) -> str:
    if "stability_seed_ari" not in cl:
        return "not measured"
    text = f"K-means from 3 seeds agree at {cl['stability_seed_ari']:.2f}"
    if "stability_window_series_ari" in cl:
        text += f"; windows agree with their series' cluster at {cl['stability_window_series_ari']:.2f}"
    return text + " (near 0: the clusters may be noise)"


def flat_metrics(facts: dict[str, Any]) -> list[dict[str, Any]]:
    """train./cluster./generate. metrics as rows of a table artifact (lists and nested values left out)."""
    tr, cl, ge = facts["train"], facts["cluster"], facts["generate"]
    flat = {f"train.{k}": v for k, v in tr.items()} | {f"cluster.{k}": v for k, v in cl.items()
                                                        if not isinstance(v, (list, dict))}
    flat |= {f"generate.{k}": (v["mean"] if isinstance(v, dict) else v) for k, v in ge.items()
             if not isinstance(v, list) and (not isinstance(v, dict) or "mean" in v)}
    return [{"metric": k, "value": v} for k, v in flat.items()]


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
    for name in ("loss", "embeddings", "prototypes", "real_vs_synthetic", "k_choice", "errors"):
        if name in images:
            b64 = base64.b64encode(images[name]).decode()
            sections.append(f'<section><h2>{TITLES[name]}</h2><p>{CAPTIONS[name]}</p>'
                            f'<img alt="{TITLES[name]}" src="data:image/png;base64,{b64}"></section>')
    data_rows = [("input", m["data"]), ("rows in", ing["rows_in"]), ("series", ing["series"]),
                 ("channels", ", ".join(ing["channels"])), ("gaps filled", ing["gaps_filled"]),
                 *([("longer gaps left out", f"{ing['gaps_left']['runs']} ({ing['gaps_left']['steps']} steps), "
                     f"the first: {ing['gaps_left']['first']}")] if ing.get("gaps_left") else []),
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
        ("marginal_real_floor", "marginal, real vs real (floor)"), ("autocorrelation", "autocorrelation distance"),
        ("nearest_real_ratio", "distance to the nearest real window, vs real's (1: no copying; near 0: copies)"))
        if k in ge]
    if "eval" in ge:  # scores depend on the scale (the TimeGAN paper's: min-max, where a narrow channel barely counts)
        scale = m["config"]["windows"]["scale"]
        units = "in the input's units" if scale == "none" else f"each channel standardised (windows.scale={scale})"
        gen_rows.append(("scored on", f"{ge['eval']['windows']} real and as many synthetic windows, {units}, as the model sees them"))
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
