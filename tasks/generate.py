"""Generate: synthetic windows per cluster, written back in the series-table schema and
in original units, with a `cluster` column.

method=latent: per cluster, a Gaussian mixture fitted to that cluster's z is sampled and
decoded; each sample is returned to original units with the scaler of a random member
window of its cluster.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from prefect import task
from sklearn.mixture import GaussianMixture

from tasks.common import STAGE_TASK, logger, open_store
from tasks.embed import load_embeddings
from tasks.train import load_model
from tasks.windows import Windows, load_windows
from tsatlas.config import GenerateConfig
from tsatlas.errors import ConfigError
from tsatlas.metrics import generation_scores
from tsatlas.storage import code_version, digest


def allocate(sizes: np.ndarray, n: int) -> np.ndarray:
    """Split n samples across clusters in proportion to `sizes` (largest remainder; sums to n)."""
    share = n * sizes / sizes.sum()
    counts = np.floor(share).astype(int)
    counts[np.argsort(-(share - counts), kind="stable")[: n - counts.sum()]] += 1
    return counts


def sample_latent(Z: np.ndarray, labels: np.ndarray, counts: np.ndarray, components: int,
                  seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per cluster c, draw counts[c] points from a Gaussian mixture fitted to Z[labels == c].

    Returns:
        (z (n, D), cluster (n,)).
    """
    zs, cs = [], []
    for c, m in enumerate(counts):
        if m == 0:
            continue
        Zc = Z[labels == c]
        gm = GaussianMixture(n_components=max(1, min(components, len(Zc) // 10)), covariance_type="full",
                             reg_covar=1e-4, random_state=seed + c).fit(Zc)
        zs.append(gm.sample(int(m))[0])
        cs.append(np.full(int(m), c))
    z, cl = np.concatenate(zs).astype(np.float32), np.concatenate(cs)
    order = np.random.default_rng(seed).permutation(len(z))  # GMM.sample groups by component
    return z[order], cl[order]


def to_original_units(Xs: np.ndarray, cluster: np.ndarray, w: Windows, labels: np.ndarray, seed: int) -> np.ndarray:
    """Undo the standardisation of synthetic windows with the scalers of random member windows."""
    rng = np.random.default_rng(seed)
    template = np.empty(len(Xs), dtype=np.int64)
    for c in np.unique(cluster):
        members = np.flatnonzero(labels == c)
        at = np.flatnonzero(cluster == c)
        template[at] = members[rng.integers(0, len(members), len(at))]
    return Xs * w.scale[template][:, None, :] + w.loc[template][:, None, :]


def series_table(X: np.ndarray, cluster: np.ndarray, channels: list[str]) -> pd.DataFrame:
    """(n, T, C) synthetic windows -> long series table, one synthetic series per window."""
    n, T, C = X.shape
    ids = np.char.add(np.char.add("syn-c", cluster.astype(str)), np.char.add("-", np.char.zfill(np.arange(n).astype(str), 6)))
    df = pd.DataFrame({"series_id": np.repeat(ids, T), "timestamp": np.tile(np.arange(T, dtype=np.int64), n)})
    df = pd.concat([df, pd.DataFrame(X.reshape(n * T, C), columns=channels)], axis=1)
    df["cluster"] = np.repeat(cluster.astype(np.int32), T)
    return df


@task(name="generate", **STAGE_TASK)
def generate_task(windows: dict[str, Any], model: dict[str, Any], embed: dict[str, Any], clusters: dict[str, Any],
                  root: str, cfg: GenerateConfig, seed: int = 0, device: str = "auto",
                  storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Generate synthetic series per cluster; skipped when already done."""
    if cfg.method != "latent":
        raise ConfigError(f"generate.method={cfg.method!r} is not available yet; use 'latent'")
    store = open_store(root, storage_options)
    key = digest("generate", windows["sha256"], model["sha256"], embed["sha256"], clusters["sha256"],
                 cfg.model_dump(), seed, code_version())
    if (ref := store.stage_done("generate", key)) is not None:
        return ref
    w, channels, _ = load_windows(store, windows)
    _, Z, _, _ = load_embeddings(store, embed)
    labels = store.read_stage_table(clusters, "windows.parquet", columns=["cluster"]).column("cluster").to_numpy()
    counts = allocate(np.bincount(labels), cfg.n)
    z, cl = sample_latent(Z, labels, counts, cfg.components, seed)
    ae = load_model(store, model, device)
    Xs = ae.decode(z, steps=w.X.shape[1])  # standardised (n, T, C)
    frame = series_table(to_original_units(Xs, cl, w, labels, seed), cl, channels)
    metrics: dict[str, Any] = {"method": cfg.method, "n": int(len(z)), "per_cluster": counts.tolist()}
    if cfg.evaluate:
        metrics.update(generation_scores(w.X, Xs, seed))
    sha = store.put_table(f"stages/generate/{key}/synthetic.parquet", pa.Table.from_pandas(frame, preserve_index=False))
    logger().info("generate: %d synthetic windows (%d rows)", len(z), len(frame))
    return store.finish_stage("generate", key, {"synthetic.parquet": sha}, "synthetic.parquet", len(frame), metrics=metrics)
