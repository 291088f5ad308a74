"""Figures of a run, as PNG bytes (matplotlib, Agg backend; no display needed).

Each function takes plain arrays and returns one PNG; nothing here reads the store.
"""

from __future__ import annotations

import io

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402

from tsatlas.metrics import acf  # noqa: E402

MAX_CHANNELS = 4  # channels drawn per figure; the rest are listed in the title
COLORS = plt.get_cmap("tab10")


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _legend(ax, **kw) -> None:
    """A legend where the axes have labelled lines (a cluster of one window has no autocorrelation to draw)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kw)


def _channels(channels: list[str]) -> tuple[list[int], str]:
    shown = list(range(min(len(channels), MAX_CHANNELS)))
    note = f" (first {MAX_CHANNELS} of {len(channels)} channels)" if len(channels) > MAX_CHANNELS else ""
    return shown, note


def loss_curves(history: list[dict[str, float]]) -> bytes:
    """Training and validation loss per epoch, best epoch marked."""
    ep = [h["epoch"] for h in history]
    tr = [h["train_loss"] for h in history]
    va = [h["val_loss"] for h in history]
    best = int(np.argmin(va))
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    ax.plot(ep, tr, label="train", color=COLORS(0))
    ax.plot(ep, va, label="validation", color=COLORS(1))
    ax.axvline(ep[best], color="grey", ls=":", lw=1)
    ax.annotate(f"best {va[best]:.4f} (epoch {ep[best]})", (ep[best], va[best]), textcoords="offset points",
                xytext=(6, 10), fontsize=8)
    ax.set(title="Autoencoder training", xlabel="epoch", ylabel="reconstruction MSE (standardised units)")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    if max(tr + va) > 10 * min(tr + va):  # a log axis only when the losses span a decade
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    return _png(fig)


# t-SNE on one core, measured: 2.6 s for 1,000 points at 500 iterations, 14.7 s for 2,000 at 1,000
# (sklearn's default), and it grows faster than linearly with the points
TSNE_POINTS = 1000


def embedding_map(Z: np.ndarray, labels: np.ndarray, seed: int = 0, max_points: int = 5000) -> bytes:
    """Window embeddings in 2-D, coloured by cluster: PCA of at most `max_points`, and t-SNE of
    the first TSNE_POINTS of those beside it."""
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    idx = rng.choice(len(Z), min(len(Z), max_points), replace=False)
    Zs = StandardScaler().fit_transform(Z[idx])
    lab = labels[idx]
    pca = PCA(n_components=2, random_state=seed).fit(Zs)
    maps = [("PCA", pca.transform(Zs), [f"PC{i + 1} ({v:.0%} of variance)" for i, v in enumerate(pca.explained_variance_ratio_)])]
    if len(Zs) > 10:
        from sklearn.manifold import TSNE

        sub = Zs[:TSNE_POINTS]  # idx is already a random order
        emb = TSNE(n_components=2, perplexity=min(30, (len(sub) - 1) / 3), random_state=seed, init="pca",
                   max_iter=500).fit_transform(sub)
        maps.append((f"t-SNE of {len(sub)}", emb, ["t-SNE 1", "t-SNE 2"]))
    fig, axes = plt.subplots(1, len(maps), figsize=(5.2 * len(maps), 4.4), squeeze=False)
    for ax, (name, xy, labs) in zip(axes[0], maps):
        for c in np.unique(lab):
            m = lab[:len(xy)] == c
            ax.scatter(xy[m, 0], xy[m, 1], s=6, alpha=0.6, color=COLORS(int(c) % 10), label=f"cluster {c} ({m.sum()})")
        ax.set(title=f"Window embeddings, {name}", xlabel=labs[0], ylabel=labs[1])
        ax.grid(alpha=0.2)
    axes[0][0].legend(fontsize=8, markerscale=2, loc="best")
    return _png(fig)


def prototypes(proto: np.ndarray, members: list[np.ndarray], channels: list[str]) -> bytes:
    """Each cluster's prototype (decoded centroid) over the 10-90% band of its member windows.

    Args:
        proto: (k, T, C) prototypes in original units. members: k arrays (n_c, T, C).
    """
    k, T, _ = proto.shape
    shown, note = _channels(channels)
    fig, axes = plt.subplots(k, len(shown), figsize=(3.2 * len(shown), 2.2 * k), squeeze=False, sharex=True)
    t = np.arange(T)
    for c in range(k):
        for j, ch in enumerate(shown):
            ax = axes[c][j]
            lo, mid, hi = np.percentile(members[c][:, :, ch], [10, 50, 90], axis=0)
            ax.fill_between(t, lo, hi, color=COLORS(c % 10), alpha=0.2, label="members 10-90%")
            ax.plot(t, mid, color=COLORS(c % 10), lw=1, ls="--", label="members median")
            ax.plot(t, proto[c, :, ch], color="black", lw=1.6, label="prototype")
            if c == 0:
                ax.set_title(channels[ch])
            if j == 0:
                ax.set_ylabel(f"cluster {c}\n(n={len(members[c])})")
            if c == k - 1:
                ax.set_xlabel("step in window")
            ax.grid(alpha=0.2)
    axes[0][-1].legend(fontsize=7, loc="upper right")
    fig.suptitle(f"Cluster prototypes in original units{note}", y=1.0)
    fig.tight_layout()
    return _png(fig)


def real_vs_synthetic(real: list[np.ndarray], synth: list[np.ndarray], channels: list[str], n_lines: int = 5,
                      seed: int = 0) -> bytes:
    """Per cluster: a few real and synthetic windows of the first channel, and the mean
    autocorrelation of real vs synthetic for every shown channel."""
    rng = np.random.default_rng(seed)
    k = len(real)
    shown, note = _channels(channels)
    fig, axes = plt.subplots(k, 2, figsize=(10, 2.4 * k), squeeze=False)
    for c in range(k):
        ax = axes[c][0]
        for name, X, style in (("real", real[c], "-"), ("synthetic", synth[c], "--")):
            if len(X) == 0:
                continue
            pick = rng.choice(len(X), min(n_lines, len(X)), replace=False)
            for i, p in enumerate(pick):
                ax.plot(X[p, :, 0], style, color=COLORS(0 if name == "real" else 3), lw=1, alpha=0.7,
                        label=name if i == 0 else None)
        ax.set(ylabel=f"cluster {c}\n{channels[0]}", xlabel="step" if c == k - 1 else None)
        if c == 0:
            ax.set_title(f"Real vs synthetic windows ({channels[0]})")
            _legend(ax, fontsize=7)
        ax.grid(alpha=0.2)
        ax = axes[c][1]
        if len(real[c]) > 1 and len(synth[c]) > 1:
            ra, sa = acf(real[c]), acf(synth[c])
            lags = np.arange(1, len(ra) + 1)
            for j, ch in enumerate(shown):
                ax.plot(lags, ra[:, ch], color=COLORS(j), lw=1.2, label=f"{channels[ch]} real")
                ax.plot(lags, sa[:, ch], color=COLORS(j), lw=1.2, ls="--", label=f"{channels[ch]} synthetic")
        ax.set(ylabel="autocorrelation", xlabel="lag (steps)" if c == k - 1 else None, ylim=(-1, 1))
        if c == 0:
            ax.set_title(f"Autocorrelation: solid real, dashed synthetic{note}", fontsize=10)
            _legend(ax, fontsize=6, ncol=2)
        ax.grid(alpha=0.2)
    fig.tight_layout()
    return _png(fig)


def error_histogram(errors: np.ndarray, threshold: float) -> bytes:
    """Reconstruction errors per window with the anomaly threshold."""
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    ax.hist(errors, bins=min(60, max(10, len(errors) // 20)), color=COLORS(0), alpha=0.8)
    ax.axvline(threshold, color=COLORS(3), ls="--", label=f"anomaly threshold {threshold:.3f}")
    n_over = int((errors > threshold).sum())
    ax.set(title=f"Reconstruction error per window ({n_over} of {len(errors)} above the threshold)",
           xlabel="reconstruction MSE (standardised units)", ylabel="windows")
    ax.legend()
    ax.grid(alpha=0.2)
    return _png(fig)


def k_choice(silhouette_by_k: dict[str, float], chosen: int) -> bytes:
    """Silhouette of every k tried by cluster.k=auto, the chosen k marked."""
    ks = sorted(int(k) for k in silhouette_by_k)
    vals = [silhouette_by_k[str(k)] for k in ks]
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    ax.plot(ks, vals, marker="o", color=COLORS(0))
    ax.axvline(chosen, color="grey", ls=":", lw=1)
    ax.annotate(f"k = {chosen}", (chosen, max(vals)), textcoords="offset points", xytext=(6, -12), fontsize=8)
    ax.set(title="Choosing k", xlabel="k", ylabel="silhouette (sample of windows)")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    return _png(fig)
