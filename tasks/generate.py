"""The generate task: synthetic series per cluster (latent sampling or TimeGAN)."""

from __future__ import annotations

import pyarrow as pa
from prefect import task

from tasks.common import STAGE_TASK, open_store, stage_state
from tsatlas import catalog
from tsatlas.config import GenerateConfig
from tsatlas.generation import generate
from tsatlas.stage import run_stage


@task(name="generate", **STAGE_TASK)
def generate_task(windows: catalog.WindowsRef, model: catalog.ModelRef, embed: catalog.EmbedRef,
                  clusters: catalog.ClusterRef, root: str, cfg: GenerateConfig, seed: int = 0,
                  device: str = "auto", credentials: str | None = None) -> catalog.SyntheticRef:
    """Generate synthetic series per cluster; reused when already done."""
    store = open_store(root, credentials)

    def compute(w):
        win, channels, _ = catalog.read_windows(store, windows)
        frame, metrics, gan = generate(catalog.read_model(store, model, device), win, channels,
                                       catalog.read_embeddings(store, embed).z,
                                       catalog.read_assignments(store, clusters), cfg, seed, device)
        catalog.write_synthetic(w, pa.Table.from_pandas(frame, preserve_index=False), gan)
        return catalog.finish(w, catalog.SYNTHETIC, len(frame), metrics=metrics)

    return stage_state(run_stage(store, "generate", [windows, model, embed, clusters],
                                 {"generate": cfg.model_dump(), "seed": seed}, compute))
