import numpy as np
import pytest

from tsatlas.clustering import cluster_embeddings
from tsatlas.config import ClusterConfig
from tsatlas.errors import ConfigError


def _blobs(k=3, per=40, D=4, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 10, (k, D))
    Z = np.concatenate([c + rng.normal(0, 0.5, (per, D)) for c in centers])
    return Z, np.repeat(np.arange(k), per)


def test_labels_are_the_nearest_centroid_and_auto_finds_k():
    Z, truth = _blobs()
    c = cluster_embeddings(Z, Z[::40], ClusterConfig(k="auto", k_min=2, k_max=6))
    assert c.k == 3 and c.metrics["sizes"] == [40, 40, 40]
    Zs = (Z - Z.mean(0)) / Z.std(0)
    Cs = (c.centroids - Z.mean(0)) / Z.std(0)
    nearest = np.argmin(((Zs[:, None] - Cs[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_array_equal(c.labels, nearest)
    np.testing.assert_allclose(c.distance, np.sqrt(((Zs - Cs[c.labels]) ** 2).sum(1)), rtol=1e-6)
    assert c.metrics["silhouette"] > 0.8


def test_series_agreement_with_labels():
    Z, truth = _blobs(k=2, per=30)
    series_z = np.stack([Z[i:i + 10].mean(0) for i in range(0, 60, 10)])
    series_truth = np.array(["a", "a", "a", "b", "b", "b"])
    c = cluster_embeddings(Z, series_z, ClusterConfig(k=2), series_truth=series_truth)
    assert c.metrics["ari"] == pytest.approx(1.0) and c.metrics["nmi"] == pytest.approx(1.0)


def test_k_larger_than_windows_is_an_error():
    Z, _ = _blobs(per=2)
    with pytest.raises(ConfigError, match=r"cluster\.k=10 exceeds the number of windows \(6\)"):
        cluster_embeddings(Z, Z, ClusterConfig(k=10))


def test_assign_matches_the_fitted_labels():
    from tsatlas.clustering import assign

    Z, _ = _blobs()
    c = cluster_embeddings(Z, Z[:3], ClusterConfig(k=3))
    lab, dist = assign(Z, c.centroids, c.z_mean, c.z_scale)
    np.testing.assert_array_equal(lab, c.labels)
    np.testing.assert_allclose(dist, c.distance, rtol=1e-6, atol=1e-9)


def test_minibatch_kmeans_above_the_threshold(monkeypatch):
    import tsatlas.clustering as tcl
    from sklearn.cluster import MiniBatchKMeans
    from sklearn.metrics import adjusted_rand_score

    monkeypatch.setattr(tcl, "MINIBATCH_ABOVE", 50)
    used = []
    real = tcl.kmeans
    monkeypatch.setattr("tsatlas.clustering.kmeans", lambda *a: used.append(real(*a)) or used[-1])
    Z, truth = _blobs()
    c = cluster_embeddings(Z, Z[:3], ClusterConfig(k=3))
    assert isinstance(used[0], MiniBatchKMeans)
    assert adjusted_rand_score(truth, c.labels) == 1.0


def test_stability_tells_structure_from_noise():
    Z, _ = _blobs(k=3, per=60)
    window_series = np.repeat(np.arange(18), 10)  # 10 windows per series, each series in one blob
    series_z = np.stack([Z[window_series == s].mean(0) for s in range(18)])
    real = cluster_embeddings(Z, series_z, ClusterConfig(k=3), window_series=window_series).metrics
    assert real["stability_seed_ari"] == pytest.approx(1.0) and real["stability_window_series_ari"] == pytest.approx(1.0)

    noise = np.random.default_rng(1).normal(size=(180, 8))  # no structure: fits disagree, series mean little
    fake = cluster_embeddings(noise, series_z[:, :1].repeat(8, 1), ClusterConfig(k=6), window_series=window_series).metrics
    assert fake["stability_seed_ari"] < 0.6 and fake["stability_window_series_ari"] < 0.2


def test_window_series_maps_each_window_to_its_series_row():
    from tsatlas.catalog import Embeddings
    e = Embeddings(np.arange(4), np.array(["b", "a", "b", "c"]), np.zeros((4, 2)), np.zeros(4),
                   np.array(["c", "a", "b"]), np.zeros((3, 2)), None)
    np.testing.assert_array_equal(e.window_series, [2, 1, 2, 0])
