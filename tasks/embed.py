"""The embed task: z and reconstruction error for every window, and one embedding per series."""

from __future__ import annotations

from prefect import task

from tasks.common import STAGE_TASK, open_store, stage_state
from tsatlas import catalog
from tsatlas.embedding import embed_windows
from tsatlas.stage import run_stage


@task(name="embed", **STAGE_TASK)
def embed_task(windows: catalog.WindowsRef, model: catalog.ModelRef, root: str, device: str = "auto",
               credentials: str | None = None) -> catalog.EmbedRef:
    """Embed every window with the trained encoder; reused when already done."""
    store = open_store(root, credentials)

    def compute(w):
        win, _, ids = catalog.read_windows(store, windows)
        per_window, per_series, threshold = embed_windows(catalog.read_model(store, model, device), win, ids)
        catalog.write_embeddings(w, per_window, per_series, threshold)
        err = per_window.column("recon_error").to_numpy()
        return catalog.finish(w, catalog.EMBEDDINGS, len(err), threshold=threshold, mean_recon_error=float(err.mean()))

    return stage_state(run_stage(store, "embed", [windows, model], {}, compute))
