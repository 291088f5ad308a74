"""The train stage under torch's distributed launcher (DDP), one process per GPU or CPU slot.

On one machine the train task starts it for you when train.processes > 1. On a GPU cluster,
start it on every node with torchrun, then run the flow as usual: the train stage is found done
(same windows, config and seed -> same stage key) and the flow goes on from embed.

    torchrun --nnodes=2 --nproc_per_node=8 --rdzv_backend=c10d --rdzv_endpoint=HOST:29500 \\
        -m tsatlas.ddp --root s3://bucket/atlas --windows "$(cat windows_ref.json)" \\
        --train '{"processes": 16, "batch_size": 1024}'

The windows reference is the windows stage's output (`tsatlas run --json` lists its stage under
stages.windows; stages/windows/<key>/_done.json holds it). Every process reads the windows from
the store; rank 0 checkpoints each epoch and writes the stage, so a relaunch resumes from the
last checkpoint. Store credentials: the usual AWS_* variables, or TSATLAS_STORAGE_OPTIONS (JSON).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

import torch
import torch.distributed as dist

from tsatlas.catalog import StageRef
from tsatlas.config import ClusterConfig, TrainConfig
from tsatlas.storage import Store
from tsatlas.trainer import train_stage


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="tsatlas train stage under torchrun (DDP)")
    ap.add_argument("--root", required=True)
    ap.add_argument("--windows", required=True, help="the windows stage reference, as JSON")
    ap.add_argument("--train", default="{}", help="train config as JSON (the train.* keys)")
    ap.add_argument("--clusters", default=None, help="cluster config as JSON (objective=idec only)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    use_cuda = torch.cuda.is_available() and json.loads(args.train).get("device", "auto") != "cpu"
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group("nccl" if use_cuda else "gloo")
    rank = dist.get_rank()
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format=f"[rank {rank}] %(message)s", stream=sys.stdout)
    try:
        cfg = TrainConfig.model_validate_json(args.train)
        clusters = ClusterConfig.model_validate_json(args.clusters) if args.clusters else None
        store = Store(args.root, json.loads(os.environ.get("TSATLAS_STORAGE_OPTIONS") or "{}") or None)
        ref = train_stage(store, StageRef.from_json(json.loads(args.windows)), cfg, args.seed, clusters)
        if ref is not None:
            logging.getLogger("tsatlas.train").info("train: wrote %s (%s)", ref.uri, ref.facts.get("metrics"))
        dist.barrier()
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
