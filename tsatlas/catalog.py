"""The catalog: one typed reference per stage output, one reader and one writer per artifact.

Every stage writes under stages/<stage>/<key>/<attempt>/ (see storage.StageWriter); file names
are distinct across stages:

    ingest    series.parquet                                  the series table
    windows   windows.parquet, scaler.parquet                 one row per window; the fitted scaler
    train     model.pt, history.parquet                       weights (a state dict); per-epoch losses
    embed     embeddings.parquet, series_embeddings.parquet   z and reconstruction error
    cluster   assignments.parquet, series_assignments.parquet, kmeans.json
    generate  synthetic.parquet [, timegan.pt]
    report    <figure>.png, prototypes.parquet

and each run writes runs/<run_id>/manifest.json (plus its plots, prototypes and report.html).

Readers verify checksums once per process: a file already verified (same size and mtime) is
not hashed again, and the big arrays are memory-mapped, so one run reads each artifact once.
"""

from __future__ import annotations

import io
import json
import logging
import os
import pickle
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tsatlas.errors import CorruptArtifactError, StorageError, redact
from tsatlas.storage import Store, StageWriter, cache_dir, check_key, sha256_file
from tsatlas.tables import fixed_list, from_fixed_list, meta, with_meta
from tsatlas.windowing import Windows, from_table

log = logging.getLogger(__name__)

SERIES = "series.parquet"
WINDOWS, SCALER = "windows.parquet", "scaler.parquet"
MODEL, HISTORY, CHECKPOINT = "model.pt", "history.parquet", "checkpoint.pt"
EMBEDDINGS, SERIES_EMBEDDINGS = "embeddings.parquet", "series_embeddings.parquet"
ASSIGNMENTS, SERIES_ASSIGNMENTS, KMEANS = "assignments.parquet", "series_assignments.parquet", "kmeans.json"
SYNTHETIC, TIMEGAN = "synthetic.parquet", "timegan.pt"
PROTOTYPES = "prototypes.parquet"

READS: Counter[str] = Counter()  # artifact files read from the store in this process, "stage/name" -> count


# -- references -----------------------------------------------------------------
@dataclass
class StageRef:
    """A finished stage output: where its files are, their sha256, and small facts about it.
    This is what tasks pass to each other and what stages/<stage>/<key>/_done.json holds."""

    stage: str
    key: str
    prefix: str                 # stages/<stage>/<key>/<attempt>
    files: dict[str, str]       # file name -> sha256
    main: str                   # the file that `uri`, `sha256` and `rows` describe
    rows: int
    uri: str
    facts: dict[str, Any] = field(default_factory=dict)
    # what this run did, not stored with the output: found it in the store, and in how many seconds
    reused: bool = field(default=False, compare=False)
    seconds: float | None = field(default=None, compare=False)

    @property
    def sha256(self) -> str:
        return self.files[self.main]

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("reused")
        d.pop("seconds")
        return d

    @staticmethod
    def from_json(d: dict[str, Any]) -> StageRef:
        return _REF_TYPES.get(d["stage"], StageRef)(**d)

    def manifest_entry(self) -> dict[str, Any]:
        return {"uri": self.uri, "sha256": self.sha256, "rows": self.rows, "key": self.key, "prefix": self.prefix,
                "files": dict(self.files)}


class IngestRef(StageRef):
    @property
    def info(self) -> dict[str, Any]:
        """rows_in, series, rows, channels, gaps_filled, step, has_label."""
        return self.facts["info"]

    @property
    def channels(self) -> list[str]:
        return self.info["channels"]


class WindowsRef(StageRef):
    @property
    def shape(self) -> list[int]:
        return self.facts["shape"]

    @property
    def channels(self) -> list[str]:
        return self.facts["channels"]


class ModelRef(StageRef):
    @property
    def metrics(self) -> dict[str, Any]:
        return self.facts["metrics"]


class EmbedRef(StageRef):
    @property
    def threshold(self) -> float:
        return self.facts["threshold"]


class ClusterRef(ModelRef):
    pass


class SyntheticRef(ModelRef):
    pass


_REF_TYPES = {"ingest": IngestRef, "windows": WindowsRef, "train": ModelRef, "embed": EmbedRef,
              "cluster": ClusterRef, "generate": SyntheticRef}


def finish(w: StageWriter, main: str, rows: int, **facts: Any) -> StageRef:
    """Publish a stage attempt (its _done.json is written last) and return its typed reference."""
    ref = StageRef.from_json({"stage": w.stage, "key": w.key, "prefix": w.prefix, "files": dict(w.files),
                              "main": main, "rows": int(rows), "uri": w.store.uri(f"{w.prefix}/{main}"),
                              "facts": facts})
    w.publish(ref.to_json())
    return ref


def find(store: Store, stage: str, key: str) -> StageRef | None:
    """The published reference of stage output `key`, or None (never written, or unreadable)."""
    done = check_key(f"stages/{stage}/{key}/_done.json")
    if not store.exists(done):
        return None
    try:
        return StageRef.from_json(store.get_json(done))
    except (ValueError, TypeError, KeyError) as e:  # truncated or foreign: the stage is computed again
        log.warning("%s: unreadable (%s): computing the stage again", store.uri(done), type(e).__name__)
        return None


def verify(store: Store, ref: StageRef) -> str | None:
    """None when every file of `ref` is present with its checksum, else what is wrong with the first bad one."""
    for name in ref.files:
        try:
            local_path(store, ref, name)
        except StorageError as e:
            return str(e)
    return None


# -- verified local files ---------------------------------------------------------
_VERIFIED: dict[tuple[str, str], tuple[str, int, int]] = {}  # (uri, sha256) -> (path, size, mtime_ns)


def _stat(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


def local_path(store: Store, ref: StageRef, name: str) -> str:
    """A local, checksum-verified path of one of `ref`'s files: the file itself in a local store,
    a cached copy otherwise. Hashed once per process while its size and mtime stay the same."""
    sha = ref.files[name]
    key = f"{ref.prefix}/{name}"
    memo = _VERIFIED.get((store.uri(key), sha))
    if memo is not None and os.path.exists(memo[0]) and _stat(memo[0]) == memo[1:]:
        return memo[0]
    READS[f"{ref.stage}/{name}"] += 1
    path = store.local_copy(key, sha)
    _VERIFIED[(store.uri(key), sha)] = (path, *_stat(path))
    return path


def _read_table(store: Store, ref: StageRef, name: str, columns: list[str] | None = None) -> pa.Table:
    path = local_path(store, ref, name)
    try:
        return pq.read_table(path, columns=columns)
    except pa.ArrowInvalid as e:
        raise StorageError(f"{ref.uri}: {name} is not a readable Parquet file ({e})") from None


def _read_bytes(store: Store, ref: StageRef, name: str) -> bytes:
    with open(local_path(store, ref, name), "rb") as f:
        return f.read()


def forget() -> None:
    """Drop what this process has verified and loaded, as a new process would start."""
    _VERIFIED.clear()
    _WINDOWS.clear()
    _MODELS.clear()


# -- ingest -------------------------------------------------------------------------
def series_path(store: Store, ref: IngestRef) -> str:
    """The series table as a verified local Parquet file (read it in batches)."""
    return local_path(store, ref, SERIES)


# -- windows ------------------------------------------------------------------------
def write_scaler(w: StageWriter, scaler: pa.Table) -> None:
    w.put_table(SCALER, scaler)


def read_scaler(store: Store, ref: WindowsRef) -> pa.Table:
    """series_id (null: global), loc, scale: the small fitted scaler, without the windows."""
    return _read_table(store, ref, SCALER)


_WINDOWS: dict[tuple[str, str], tuple[Windows, list[str], pa.Table]] = {}


def read_windows(store: Store, ref: WindowsRef) -> tuple[Windows, list[str], pa.Table]:
    """(windows with X a read-only memory map, channel names, the id columns: window_id,
    series_id, start, label). Loaded once per process; X never sits in memory whole."""
    memo_key = (store.root, ref.sha256)
    if memo_key in _WINDOWS:
        return _WINDOWS[memo_key]
    path = local_path(store, ref, WINDOWS)
    pf = pq.ParquetFile(path)
    table = pf.read(columns=[c for c in pf.schema_arrow.names if c != "values"])
    T, C = int(meta(table, "length")), len(meta(table, "channels").split(","))
    X = windows_array(path, ref.sha256, (T, C))
    w, channels = from_table(table, X, read_scaler(store, ref))
    _WINDOWS.clear()  # one windows artifact at a time is enough for a run
    _WINDOWS[memo_key] = (w, channels, table.drop_columns([c for c in ("loc", "scale") if c in table.column_names]))
    return _WINDOWS[memo_key]


def windows_array(path: str, sha256: str, shape: tuple[int, int]) -> np.ndarray:
    """The `values` column of a windows.parquet as a read-only (n, T, C) float32 memory map.

    Built once per file in the private cache_dir(), one row group at a time (neither building nor
    reading needs the whole array in memory), with a sidecar holding the .npy's own sha256; a
    cached array is hashed before its first use in a process, and rebuilt when it does not match.
    """
    cached = os.path.join(cache_dir(), f"{sha256}.values.npy")
    sidecar = f"{cached}.sha256"
    if os.path.exists(cached) and os.path.exists(sidecar):
        with open(sidecar) as f:
            want = f.read().strip()
        memo = _VERIFIED.get((cached, want))
        if memo is not None and _stat(cached) == memo[1:]:
            return np.load(cached, mmap_mode="r")
        if sha256_file(cached) == want:
            _VERIFIED[(cached, want)] = (cached, *_stat(cached))
            return np.load(cached, mmap_mode="r")
        log.warning("%s: cached windows array does not match its checksum: rebuilding it", cached)
    pf = pq.ParquetFile(path)
    tmp = f"{cached}.{os.getpid()}.part"
    with open(tmp, "wb") as f:
        header = {"descr": "<f4", "fortran_order": False, "shape": (pf.metadata.num_rows, *shape)}
        np.lib.format.write_array_header_2_0(f, header)
        for g in range(pf.num_row_groups):
            f.write(from_fixed_list(pf.read_row_group(g, columns=["values"]).column("values"), shape)
                    .astype("<f4", copy=False).tobytes())
    digest = sha256_file(tmp)
    with open(f"{sidecar}.{os.getpid()}.part", "w") as f:
        f.write(digest)
    os.replace(tmp, cached)
    os.replace(f"{sidecar}.{os.getpid()}.part", sidecar)
    _VERIFIED[(cached, digest)] = (cached, *_stat(cached))
    return np.load(cached, mmap_mode="r")


# -- train --------------------------------------------------------------------------
def checkpoint_key(key: str) -> str:
    """Where the train stage with stage key `key` keeps its last epoch checkpoint."""
    return check_key(f"stages/train/{key}/{CHECKPOINT}")


def write_checkpoint(store: Store, key: str, state: dict[str, Any]) -> None:
    import torch

    buf = io.BytesIO()
    torch.save(state, buf)
    store.put_bytes(checkpoint_key(key), buf.getvalue())


def read_checkpoint(store: Store, key: str) -> dict[str, Any] | None:
    """The last epoch checkpoint, read with weights_only=True: a pickle that is more than
    tensors and plain values is refused, never run."""
    import torch

    ck = checkpoint_key(key)
    if not store.exists(ck):
        return None
    try:
        return torch.load(io.BytesIO(store.get_bytes(ck)), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as e:
        raise CorruptArtifactError(f"{store.uri(ck)}: refused to load checkpoint (not a plain state dict: "
                                   f"{str(e).splitlines()[0][:160]}); delete it to train from scratch") from None


def write_model(w: StageWriter, model_bytes: bytes, history: list[dict[str, Any]]) -> None:
    w.put_bytes(MODEL, model_bytes)
    w.put_table(HISTORY, pa.Table.from_pylist(history))


_MODELS: dict[tuple[str, str, str], Any] = {}


@contextmanager
def _refused(ref: Any, what: str) -> Iterator[None]:
    """Weights that torch.load(weights_only=True) will not take (a pickle, a tampered file) become
    a CorruptArtifactError naming the artifact."""
    try:
        yield
    except (pickle.UnpicklingError, RuntimeError) as e:
        raise CorruptArtifactError(f"{ref.uri}: refused to load {what} ({str(e).splitlines()[0][:160]})") from None


def read_model(store: Store, ref: ModelRef, device: str = "auto") -> Any:
    """The trained RNNAutoencoder (weights loaded with weights_only=True); once per process."""
    from tsatlas.autoencoder import RNNAutoencoder

    memo_key = (store.root, ref.sha256, device)
    if memo_key not in _MODELS:
        with _refused(ref, "model weights"):
            _MODELS[memo_key] = RNNAutoencoder.from_bytes(_read_bytes(store, ref, MODEL), device=device)
    return _MODELS[memo_key]


def read_history(store: Store, ref: ModelRef) -> list[dict[str, Any]]:
    return _read_table(store, ref, HISTORY).to_pylist()


# -- embed --------------------------------------------------------------------------
@dataclass
class Embeddings:
    """window_id, series_id (n,), z (n, D), recon_error (n,); per series: ids, z (S, D), labels or None."""

    window_id: np.ndarray
    series_id: np.ndarray
    z: np.ndarray
    recon_error: np.ndarray
    series_ids: np.ndarray
    series_z: np.ndarray
    series_labels: np.ndarray | None

    @property
    def window_series(self) -> np.ndarray:
        """(n,) each window's row in series_ids / series_z."""
        order = np.argsort(self.series_ids)
        return order[np.searchsorted(self.series_ids, self.series_id, sorter=order)]


def write_embeddings(w: StageWriter, windows: pa.Table, series: pa.Table, threshold: float) -> None:
    w.put_table(EMBEDDINGS, with_meta(windows, threshold=threshold))
    w.put_table(SERIES_EMBEDDINGS, series)


def read_embeddings(store: Store, ref: EmbedRef) -> Embeddings:
    wt, st = _read_table(store, ref, EMBEDDINGS), _read_table(store, ref, SERIES_EMBEDDINGS)
    D = wt.schema.field("z").type.list_size
    labels = None
    if "label" in st.column_names and st.column("label").null_count == 0:
        labels = st.column("label").to_numpy(zero_copy_only=False)
    return Embeddings(wt.column("window_id").to_numpy(), wt.column("series_id").to_numpy(zero_copy_only=False),
                      from_fixed_list(wt.column("z"), (D,)), wt.column("recon_error").to_numpy(),
                      st.column("series_id").to_numpy(zero_copy_only=False), from_fixed_list(st.column("z"), (D,)),
                      labels)


# -- cluster ------------------------------------------------------------------------
@dataclass
class KMeansModel:
    """The fitted clustering, small: centroids (k, D) in z units, the standardisation K-means ran
    in (z_mean, z_scale (D,)), and training cluster sizes (k,)."""

    centroids: np.ndarray
    z_mean: np.ndarray
    z_scale: np.ndarray
    sizes: np.ndarray

    def to_json(self) -> dict[str, Any]:
        return {k: np.asarray(v).tolist() for k, v in asdict(self).items()}


def write_clusters(w: StageWriter, windows: pa.Table, series: pa.Table, km: KMeansModel) -> None:
    w.put_table(ASSIGNMENTS, windows)
    w.put_table(SERIES_ASSIGNMENTS, series)
    w.put_bytes(KMEANS, json.dumps(km.to_json()).encode())


def read_kmeans(store: Store, ref: ClusterRef) -> KMeansModel:
    d = json.loads(_read_bytes(store, ref, KMEANS))
    return KMeansModel(np.asarray(d["centroids"], np.float32), np.asarray(d["z_mean"]), np.asarray(d["z_scale"]),
                       np.asarray(d["sizes"], np.int64))


def read_assignments(store: Store, ref: ClusterRef) -> np.ndarray:
    """(n,) cluster of every window, in window order."""
    return _read_table(store, ref, ASSIGNMENTS, columns=["cluster"]).column("cluster").to_numpy()


# -- generate -----------------------------------------------------------------------
def write_synthetic(w: StageWriter, table: pa.Table, gan_weights: bytes | None) -> None:
    w.put_table(SYNTHETIC, table)
    if gan_weights is not None:
        w.put_bytes(TIMEGAN, gan_weights)


def read_synthetic(store: Store, ref: SyntheticRef) -> pa.Table:
    return _read_table(store, ref, SYNTHETIC)


def read_timegan(store: Store, ref: SyntheticRef, n_channels: int, n_classes: int, cfg: Any) -> Any:
    """The TimeGAN a `generate.method=timegan` run trained (weights_only=True), on the CPU, in eval
    mode; `cfg` the run's GenerateConfig (its gan_* keys shape the networks). Its networks read
    n_channels x gan_patch values per recurrent step: the width is read from the weights, so runs
    from before gan_patch (every step) load as they were trained."""
    import torch

    from tsatlas.timegan import TimeGAN, TimeGANConfig

    with _refused(ref, "TimeGAN weights"):
        state = torch.load(io.BytesIO(_read_bytes(store, ref, TIMEGAN)), weights_only=True)
        first = state.get("embedder.rnn.weight_ih_l0") if isinstance(state, dict) else None
        width = first.shape[1] if first is not None and first.ndim == 2 else n_channels
        if width % n_channels:
            raise RuntimeError(f"its networks read {width} values per step, not a multiple of {n_channels} channels")
        model = TimeGAN(TimeGANConfig(n_channels=width, n_classes=n_classes, hidden=cfg.gan_hidden,
                                      layers=cfg.gan_layers, cell=cfg.gan_cell))
        model.load_state_dict(state)
    return model.eval()


# -- report -------------------------------------------------------------------------
def write_figures(w: StageWriter, images: dict[str, bytes], prototypes: pa.Table) -> None:
    for name, png in images.items():
        w.put_bytes(f"{name}.png", png)
    w.put_table(PROTOTYPES, prototypes)


def read_figures(store: Store, ref: StageRef) -> dict[str, bytes]:
    return {f.removesuffix(".png"): _read_bytes(store, ref, f) for f in ref.files if f.endswith(".png")}


def prototypes_table(proto: np.ndarray, sizes: np.ndarray) -> pa.Table:
    """(k, T, C) decoded centroids in original units -> one row per cluster."""
    return pa.table({"cluster": pa.array(np.arange(len(proto), dtype=np.int32)), "size": pa.array(sizes),
                     "prototype": fixed_list(proto)})


# -- runs ---------------------------------------------------------------------------
def manifest_key(run_id: str) -> str:
    return check_key(f"runs/{run_id}/manifest.json")


def write_manifest(store: Store, manifest: dict[str, Any]) -> str:
    """Write runs/<run_id>/manifest.json (last in a run) and return its URI."""
    key = manifest_key(manifest["run_id"])
    store.put_json(key, manifest)
    return store.uri(key)


def _run_ids(store: Store) -> list[str]:
    """Run ids under the root, oldest first (run ids sort by time)."""
    try:
        return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in store.fs.ls(store.path("runs"), detail=False))
    except FileNotFoundError:
        return []


def latest_run(store: Store) -> str:
    """The newest run id under the root."""
    runs = _run_ids(store)
    if not runs:
        raise StorageError(f"{store.uri('runs')}: no runs yet")
    return runs[-1]


def run_of_flow_run(store: Store, flow_run_id: str) -> str | None:
    """The run id that the Prefect flow run `flow_run_id` wrote a manifest for, if any."""
    tail = "-" + str(flow_run_id).replace("-", "")[:8]
    return next((r for r in reversed(_run_ids(store)) if r.endswith(tail) and store.exists(manifest_key(r))), None)


def read_manifest(store: Store, run_id: str) -> dict[str, Any]:
    """The manifest of `run_id` ('latest': the newest run)."""
    run_id = latest_run(store) if run_id == "latest" else run_id
    key = manifest_key(run_id)
    if not store.exists(key):
        raise StorageError(f"{store.uri(key)}: no such run")
    return store.get_json(key)


def stage_ref(manifest: dict[str, Any], stage: str) -> StageRef:
    """A stage's typed reference from a run manifest."""
    e = manifest["stages"][stage]
    main = e["uri"].rsplit("/", 1)[-1]
    return StageRef.from_json({"stage": stage, "key": e["key"], "prefix": e["prefix"], "files": e["files"],
                               "main": main, "rows": e["rows"], "uri": e["uri"], "facts": e.get("facts", {})})


STAGES = ("ingest", "windows", "train", "embed", "cluster", "generate")


def build_manifest(run_id: str, data: str, config: dict[str, Any], refs: dict[str, StageRef],
                   code_version: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A run's manifest: config, every stage's files and checksums, the summary and the metrics."""
    import datetime as dt

    ing, win, emb = refs["ingest"], refs["windows"], refs["embed"]
    return {
        "run_id": run_id,
        "flow": "atlas",
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "data": redact(data),
        "config": config,
        "code_version": code_version,
        "stages": {s: refs[s].manifest_entry() for s in STAGES},
        "summary": {"ingest": ing.info, "windows": {"shape": win.shape, "skipped_series": win.facts["skipped_series"],
                                                 "left_out": win.facts.get("left_out", 0), "grid": win.facts.get("grid")},
                    "embed": {"anomaly_threshold": emb.threshold}},
        "metrics": {s: refs[s].facts["metrics"] for s in ("train", "cluster", "generate")},
        "timings": {s: {"seconds": None if refs[s].seconds is None else round(refs[s].seconds, 3),
                        "reused": refs[s].reused} for s in STAGES},
        **(extra or {}),
    }


def publish_run_files(store: Store, run_id: str, figures: StageRef) -> dict[str, Any]:
    """Copy a run's figures and prototypes beside its manifest; -> their URIs and checksums."""
    out: dict[str, Any] = {"plots": {}}
    for name, png in read_figures(store, figures).items():
        k = check_key(f"runs/{run_id}/plots/{name}.png")
        out["plots"][name] = {"uri": store.uri(k), "sha256": store.put_bytes(k, png), "url": store.browser_url(k)}
    k = check_key(f"runs/{run_id}/{PROTOTYPES}")
    out["prototypes"] = {"uri": store.uri(k), "rows": figures.rows,
                         "sha256": store.put_bytes(k, _read_bytes(store, figures, PROTOTYPES))}
    return out


def read_run_plots(store: Store, manifest: dict[str, Any]) -> dict[str, bytes]:
    return {name: store.get_bytes(f"runs/{manifest['run_id']}/plots/{name}.png", p["sha256"])
            for name, p in manifest.get("plots", {}).items()}


def write_report_page(store: Store, run_id: str, page: bytes) -> str:
    key = check_key(f"runs/{run_id}/report.html")
    store.put_bytes(key, page)
    return store.uri(key)


# -- scores and partitions ----------------------------------------------------------
def write_scores(store: Store, score_id: str, table: pa.Table, summary: dict[str, Any]) -> dict[str, Any]:
    key = check_key(f"scores/{score_id}/scores.parquet")
    sha = store.put_table(key, table)
    result = {**summary, "score_id": score_id, "uri": store.uri(key), "sha256": sha}
    store.put_json(check_key(f"scores/{score_id}/summary.json"), result)
    return result


def partition_record(store: Store, key: str) -> dict[str, Any] | None:
    return store.get_json(key) if store.exists(key) else None


def write_partition_record(store: Store, key: str, record: dict[str, Any]) -> None:
    store.put_json(key, record)
