"""K-means helpers shared by the cluster stage and the autoencoder's joint clustering objective."""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.metrics import silhouette_score

MINIBATCH_ABOVE = 50_000  # windows; above this K-means runs in mini-batches


def kmeans(k: int, seed: int, n: int) -> KMeans | MiniBatchKMeans:
    """KMeans (10 restarts), or MiniBatchKMeans for more than MINIBATCH_ABOVE rows."""
    if n > MINIBATCH_ABOVE:
        return MiniBatchKMeans(n_clusters=k, batch_size=4096, n_init=3, random_state=seed)
    return KMeans(n_clusters=k, n_init=10, random_state=seed)


def choose_k(Zs: np.ndarray, k_min: int, k_max: int, sample: int, seed: int) -> tuple[int, dict[int, float]]:
    """The k in k_min..k_max with the best silhouette, each k fitted and scored on one seeded
    sample of the standardised Z (at most 4 x `sample` rows)."""
    rng = np.random.default_rng(seed)
    S = Zs[rng.choice(len(Zs), min(len(Zs), 4 * sample), replace=False)]
    scores = {}
    for k in range(k_min, min(k_max, len(S) - 1) + 1):
        labels = kmeans(k, seed, len(S)).fit_predict(S)
        scores[k] = float(silhouette_score(S, labels, sample_size=min(sample, len(S)), random_state=seed))
    return max(scores, key=scores.__getitem__), scores
