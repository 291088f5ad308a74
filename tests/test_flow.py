"""The whole atlas flow under the Prefect test harness (a real local Prefect API)."""

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import TINY
from tsatlas import catalog
from tsatlas.config import load_config
from tsatlas.storage import Store

STAGES = ["ingest", "windows", "train", "embed", "cluster", "generate"]


def _sets(extra=()):
    return [f"{s}.{k}={v}" for s, kv in TINY.items() for k, v in kv.items()] + list(extra)


def _run(data, root, extra=()):
    from flows.pipeline import atlas

    cfg = load_config(sets=_sets(extra))
    return atlas(data=data, root=root, **cfg.sections())


def test_atlas_flow_end_to_end(prefect_harness, tiny_csv, tmp_path):
    root = str(tmp_path / "artifacts")
    catalog.READS.clear()
    m = _run(tiny_csv, root)
    # one run reads each artifact file once: the windows, the model and the embeddings are shared
    # by the stages after them, not read again by each
    assert catalog.READS and set(catalog.READS.values()) == {1}, catalog.READS
    assert {"windows/windows.parquet", "train/model.pt", "embed/embeddings.parquet"} <= set(catalog.READS)
    store = Store(root)

    on_disk = store.get_json(f"runs/{m['run_id']}/manifest.json")
    assert on_disk == {k: v for k, v in m.items() if k != "manifest_uri"}
    assert list(m["stages"]) == STAGES and m["flow"] == "atlas" and m["code_version"].startswith("0.1.0+")
    assert m["config"]["train"]["epochs"] == 3 and m["config"]["windows"]["length"] == 16
    for name, st in m["stages"].items():  # every artifact readable, checksum verified
        prefix = st["prefix"]
        for fname, sha in st["files"].items():
            data = store.get_bytes(f"{prefix}/{fname}", sha)
            if fname.endswith(".parquet") and fname == st["uri"].rsplit("/", 1)[1]:
                assert pq.read_metadata(store.path(f"{prefix}/{fname}")).num_rows == st["rows"]
            assert len(data) > 0

    # 6 series x 160 steps; windows of 16 every 8 steps -> 19 per series
    assert m["stages"]["ingest"]["rows"] == 960
    assert m["summary"]["windows"]["shape"] == [114, 16, 2]
    tr, cl, ge = m["metrics"]["train"], m["metrics"]["cluster"], m["metrics"]["generate"]
    assert tr["epochs"] == 3 and np.isfinite(tr["train_loss"]) and np.isfinite(tr["val_loss"])
    assert tr["batch_size"] == 32 and tr["lr"] == m["config"]["train"]["lr"]  # as trained (TINY sets the batch)
    assert cl["k"] == 2 and sum(cl["sizes"]) == 114 and {"silhouette", "davies_bouldin", "ari", "nmi"} <= set(cl)
    assert ge["n"] == 12 and sum(ge["per_cluster"]) == 12 and "marginal" in ge
    assert {"mean", "std"} <= set(ge["discriminative"]) and 0 <= ge["discriminative"]["mean"] <= 0.5
    assert ge["predictive"]["mean"] > 0

    syn = catalog.read_synthetic(store, catalog.stage_ref(m, "generate")).to_pandas()
    assert list(syn.columns) == ["series_id", "timestamp", "ch0", "ch1", "cluster"] and len(syn) == 12 * 16
    # original units: ch1 of the input lives around 10, ch0 around 0
    assert 5 < syn["ch1"].mean() < 15 and abs(syn["ch0"].mean()) < 3

    # a second run with nothing changed reuses every stage (the same attempt folders: nothing
    # recomputed) and writes a new manifest
    m2 = _run(tiny_csv, root)
    assert m2["run_id"] != m["run_id"]
    assert {s: m2["stages"][s]["prefix"] for s in STAGES} == {s: m["stages"][s]["prefix"] for s in STAGES}
    assert {s: m2["stages"][s]["sha256"] for s in STAGES} == {s: m["stages"][s]["sha256"] for s in STAGES}

    # changing the cluster config recomputes cluster and generate only
    m3 = _run(tiny_csv, root, ["cluster.k=3"])
    same = [s for s in STAGES if m3["stages"][s]["key"] == m["stages"][s]["key"]]
    assert same == ["ingest", "windows", "train", "embed"] and m3["metrics"]["cluster"]["k"] == 3


def test_train_failure_mid_run_resumes_from_checkpoint(prefect_harness, tiny_csv, tmp_path, monkeypatch):
    """Raise once inside epoch 3; the task's retry must start at epoch 3, not epoch 1."""
    import tsatlas.autoencoder as ae_mod
    from tasks.train import train_task

    monkeypatch.setattr(train_task, "retry_delay_seconds", [0, 0])
    real_fit = ae_mod.fit
    starts, armed = [], []

    def recording_fit(model, loss_fn, *args, resume=None, on_epoch=None, **kw):
        starts.append(0 if resume is None else int(resume["epoch"]) + 1)

        def hook(state):
            on_epoch(state)
            if state["epoch"] == 1 and len(starts) == 1:  # epoch 2 is checkpointed: arm the crash
                armed.append(True)

        def crashing_loss(net, xb):  # wraps whatever loss the objective trains on
            if armed and net.training:
                armed.clear()
                raise RuntimeError("simulated crash inside epoch 3")
            return loss_fn(net, xb)

        return real_fit(model, crashing_loss, *args, resume=resume, on_epoch=hook, **kw)

    monkeypatch.setattr(ae_mod, "fit", recording_fit)
    m = _run(tiny_csv, str(tmp_path / "a"), ["train.epochs=4", "train.patience=10"])
    assert starts == [0, 2]  # the retry began at epoch index 2, i.e. epoch 3
    tr = m["metrics"]["train"]
    assert tr["epochs"] == 4 and tr["resumed_from_epoch"] == 2


def test_timegan_per_cluster_counts_and_long_series(prefect_harness, tiny_csv, tmp_path):
    m = _run(tiny_csv, str(tmp_path / "a"), ["windows.length=40", "generate.method=timegan", "generate.gan_iterations=3",
                                             "generate.gan_hidden=4", "generate.gan_layers=1",
                                             "generate.per_cluster=[2, 3]", "generate.length=100"])
    ge = m["metrics"]["generate"]
    assert ge["method"] == "timegan" and ge["per_cluster"] == [2, 3] and ge["length"] == 100 and ge["gan_patch"] == 2
    store = Store(str(tmp_path / "a"))
    ref = catalog.stage_ref(m, "generate")
    assert "timegan.pt" in ref.files
    syn = catalog.read_synthetic(store, ref).to_pandas()
    per_series = syn.groupby("series_id").agg(steps=("timestamp", "size"), cluster=("cluster", "first"))
    assert (per_series["steps"] == 100).all() and per_series["cluster"].value_counts().sort_index().tolist() == [2, 3]
    # the stored weights load back (weights only) as the run's model; a tampered file is refused (by its checksum)
    from tsatlas.config import GenerateConfig
    from tsatlas.errors import CorruptArtifactError
    from tsatlas.gan import sample_timegan

    cfg = GenerateConfig(**m["config"]["generate"])
    C = len(m["summary"]["ingest"]["channels"])
    gan = catalog.read_timegan(store, ref, n_channels=C, n_classes=2, cfg=cfg)
    # windows of 40 steps: the networks read 2 steps of every channel per recurrent step (gan_patch=auto)
    assert gan.cfg.n_channels == 2 * C and sample_timegan(gan, np.array([0, 1, 1]), 20, seed=0).shape == (3, 20, 2 * C)
    with open(catalog.local_path(store, ref, "timegan.pt"), "r+b") as f:
        f.write(b"garbage!")
    with pytest.raises(CorruptArtifactError, match="timegan.pt"):
        catalog.read_timegan(store, ref, n_channels=C, n_classes=2, cfg=cfg)
