"""Train and embed throughput of the autoencoder on CUDA (and the same on the CPU),
against a bare hand-written torch loop on the same model and data; and the shipped TimeGAN's
training time and discriminative score on Stocks on the card.

Uses only the core package (torch, numpy, scikit-learn), so it runs on a machine that has
a GPU build of torch but not the orchestration stack. Writes gpu_train.json to --out (default: $OUT,
else benchmarks/results/), rewritten after every case so a run cut short keeps what it measured,
and prints a Markdown table.

    python benchmarks/gpu_train.py [--out DIR] [--windows 100000] [--length 64] [--channels 4]

On a card it also checks issue #14's targets: the loss gap CUDA vs CPU, the shipped default's
speed-up over the CPU's threads at --windows, and the train stage against a bare bf16 loop at the
batch `train.batch_size=auto` picks. `--dry-run` runs those cases on the CPU at small sizes (a
minute or two), to check the script end to end before a card's time is spent on it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from tsatlas.autoencoder import RNNAutoencoder, _mse  # noqa: E402
from tsatlas.nn import AEConfig, RecurrentAutoencoder  # noqa: E402


def data(n: int, T: int, C: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(T, dtype=np.float32)
    freq = rng.uniform(0.05, 0.5, (n, 1, C)).astype(np.float32)
    phase = rng.uniform(0, 6.28, (n, 1, C)).astype(np.float32)
    return (np.sin(freq * t[None, :, None] + phase) + 0.1 * rng.standard_normal((n, T, C))).astype(np.float32)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def epoch_windows(ae: RNNAutoencoder, n: int) -> int:
    """Windows one epoch of `ae` trains on for n windows: a small set is passed over several times
    (train.min_batches)."""
    n_train = len(ae.split(n)[0])
    return n_train * max(1, -(-ae.min_batches * ae.batch_size_ // n_train))


def ours(X, device, batch, epochs, cell):
    """The train stage's estimator: windows/s of the epochs after the first (warm-up)."""
    ae = RNNAutoencoder(cell=cell, hidden=64, latent=16, epochs=epochs, batch_size=batch, patience=epochs + 1,
                        val_fraction=0.05, device=device.type, patch=1, objective="reconstruction")  # bare()'s network and loss
    ae.fit(X)
    n_train = epoch_windows(ae, len(X))
    secs = [h["seconds"] for h in ae.history_[1:]]
    sync(device)
    t0 = time.perf_counter()
    ae.embed(X, batch=8192 if device.type == "cuda" else 1024)
    sync(device)
    embed_s = time.perf_counter() - t0
    return {"train_windows_per_s": n_train / statistics.median(secs), "embed_windows_per_s": len(X) / embed_s,
            "first_loss": ae.history_[0]["train_loss"], "last_loss": ae.history_[-1]["train_loss"]}


def bare(X, device, batch, epochs, cell, bf16):
    """A minimal hand-written loop: same network, data on the device, Adam, no validation or checkpoints."""
    torch.manual_seed(0)
    n_train = int(round(len(X) * 0.95))
    model = RecurrentAutoencoder(AEConfig(n_channels=X.shape[2], cell=cell, hidden=64, latent=16, layers=1,
                                                  bidirectional=False, dropout=0.0, teacher_forcing=0.0)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    Xt = torch.from_numpy(X[:n_train]).to(device)
    secs = []
    for _ in range(epochs):
        sync(device)
        t0 = time.perf_counter()
        perm = torch.randperm(n_train, device=device)
        for i in range(0, n_train, batch):
            xb = Xt[perm[i:i + batch]]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = _mse(model, xb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sync(device)
        secs.append(time.perf_counter() - t0)
    return {"train_windows_per_s": n_train / statistics.median(secs[1:])}


LOSS_TOLERANCE = 0.10  # relative: bf16 autocast and cuDNN kernels must not cost more than this


def loss_check(X, epochs, accel):
    """The default train config on the CPU and on CUDA (`accel`), same data, seed and epochs (no
    early stop): the CUDA run's best validation loss must be within LOSS_TOLERANCE of the CPU's.
    Also the default config's train windows/s on each (median of the epochs after the first)."""
    out, devices = {}, ("cpu", "cuda")
    for dev in devices:
        ae = RNNAutoencoder(epochs=epochs, patience=epochs + 1, device=accel.type if dev == "cuda" else "cpu").fit(X)
        out[f"{dev}_val_loss"] = min(h["val_loss"] for h in ae.history_)
        out[f"{dev}_windows_per_s"] = len(ae.split(len(X))[0]) / statistics.median(h["seconds"] for h in ae.history_[1:])
    cpu, gpu = (out[f"{d}_val_loss"] for d in devices)
    rel = abs(gpu - cpu) / cpu
    return {**out, "train_windows_per_s": out[f"{devices[-1]}_windows_per_s"], "relative_gap": rel,
            "within_tolerance": rel <= LOSS_TOLERANCE}


def bundled_windows() -> np.ndarray:
    """The bundled data's windows under the default config (what `tsatlas run` trains on)."""
    import pyarrow as pa

    from tsatlas.config import PipelineConfig
    from tsatlas.ingest import BUNDLED_DATA, ingest_table
    from tsatlas.windowing import _values, make_windows

    cfg = PipelineConfig()
    ing = ingest_table(os.path.join(os.path.dirname(__file__), "..", BUNDLED_DATA), cfg.ingest)
    w, _ = make_windows(*_values(pa.Table.from_pandas(ing.frame, preserve_index=False), ing.channels), cfg.windows)
    return np.ascontiguousarray(w.X)


def default_fit(X, device, epochs=None):
    """The train stage's default estimator (batch_size="auto" included), timed, then embed."""
    kw = {} if epochs is None else {"epochs": epochs, "patience": epochs + 1}
    ae = RNNAutoencoder(device=device.type, **kw)
    sync(device)
    t0 = time.perf_counter()
    ae.fit(X)
    sync(device)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ae.embed(X, batch=8192 if device.type == "cuda" else 1024)
    sync(device)
    n_train = epoch_windows(ae, len(X))
    per_s = n_train / statistics.median(h["seconds"] for h in ae.history_[1:]) if len(ae.history_) > 1 else None
    return {"train_s": round(train_s, 2), "embed_s": round(time.perf_counter() - t0, 2), "epochs_run": len(ae.history_),
            "train_windows_per_s": per_s,
            "batch": ae.batch_size_, "lr": ae.lr_, "best_val_loss": min(h["val_loss"] for h in ae.history_),
            "windows": len(X), "cell": "gru"}


def timegan_stocks(device, iterations: int | None = None) -> dict:
    """The shipped TimeGAN (generate.method=timegan at its defaults) on Stocks, windows of 24,
    stride 1: training seconds on `device` and the discriminative scores of timegan_budget.py (2
    seeds, on the paper's min-max scale and on standardised channels as `tsatlas run` scores)."""
    from benchmarks.generation import stocks
    from benchmarks.timegan_budget import scores
    from tsatlas.gan import GANSchedule, sample_timegan, train_timegan

    X = stocks()
    t0 = time.perf_counter()
    model, hist = train_timegan(X, None, seed=0, device=device.type, schedule=GANSchedule(iterations=iterations) if iterations else None)
    sync(device)
    train_s = time.perf_counter() - t0
    S = sample_timegan(model, np.zeros(len(X), int), X.shape[1], seed=1)
    return {"train_s": round(train_s, 1), "iterations_per_phase": hist[0]["iteration"],
            **scores(X, S)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--windows", type=int, default=100_000)
    p.add_argument("--length", type=int, default=64)
    p.add_argument("--channels", type=int, default=4)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--cpu-windows", type=int, default=20_000)
    p.add_argument("--batches", default="256,1024,4096", help="also the batch train.batch_size=auto picks for --windows")
    p.add_argument("--results", action="store_true", help="also append the table to benchmarks/RESULTS.md")
    p.add_argument("--no-million", dest="million", action="store_false", help="skip the 1M-window train + embed")
    p.add_argument("--no-timegan", dest="timegan", action="store_false", help="skip the TimeGAN on Stocks")
    p.add_argument("--dry-run", action="store_true", help="the card's cases on the CPU at small sizes: checks the "
                   "script end to end where no card is lent (its numbers mean nothing)")
    p.add_argument("--out", default=os.environ.get("OUT", os.path.join(os.path.dirname(__file__), "results")),
                   help="folder for gpu_train.json (default: $OUT, else benchmarks/results)")
    args = p.parse_args()
    out_dir = args.out
    os.makedirs(out_dir, exist_ok=True)
    if args.dry_run:
        args.windows, args.epochs, args.cpu_windows = min(args.windows, 2000), 2, min(args.cpu_windows, 500)
    gpu = torch.cuda.is_available() or args.dry_run
    info = {"dry_run": args.dry_run, "torch": torch.__version__, "python": platform.python_version(), "cpu_threads": torch.get_num_threads(),
            "device": "cpu (dry run)" if args.dry_run else torch.cuda.get_device_name(0) if gpu else "none",
            "bf16": bool(gpu and torch.cuda.is_bf16_supported()),
            "windows": args.windows, "length": args.length, "channels": args.channels, "epochs": args.epochs}
    X = data(args.windows, args.length, args.channels)
    accel = torch.device("cpu" if args.dry_run else "cuda")
    rows = []

    def save() -> None:  # after every case: a run stopped by its time limit keeps what it measured
        tmp = os.path.join(out_dir, "gpu_train.json.tmp")
        with open(tmp, "w") as f:
            json.dump({"info": info, "rows": rows}, f, indent=2)
        os.replace(tmp, os.path.join(out_dir, "gpu_train.json"))

    def record(name, fn, **kw):
        try:
            t0 = time.perf_counter()
            r = fn(**kw)
            r["wall_s"] = round(time.perf_counter() - t0, 1)
        except Exception as e:  # keep measuring the other configurations
            r = {"error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()[-800:]}
        row = {"case": name, **{k: v for k, v in kw.items() if k not in ("X",)}, **r}
        row["device"] = "cuda" if args.dry_run and row["device"] is accel else str(row["device"])
        rows.append(row)
        save()
        print(json.dumps(row), flush=True)

    if gpu:
        cuda = accel
        from tsatlas.autoencoder import resolve_batch
        auto = resolve_batch("auto", 1.0, cuda, len(RNNAutoencoder().split(len(X))[0]))[0]
        info["auto_batch"] = auto  # issue #14: the default at >= 0.9x a bare bf16 loop at the batch it picks
        for b in sorted({int(x) for x in args.batches.split(",")} | {auto}):
            record("tsatlas", ours, X=X, device=cuda, batch=b, epochs=args.epochs, cell="gru")
            record("bare-fp32", bare, X=X, device=cuda, batch=b, epochs=args.epochs, cell="gru", bf16=False)
            record("bare-bf16", bare, X=X, device=cuda, batch=b, epochs=args.epochs, cell="gru", bf16=True)
        record("tsatlas", ours, X=X, device=cuda, batch=1024, epochs=args.epochs, cell="lstm")
        record("loss-check", lambda **kw: loss_check(X[:4000], 2 if args.dry_run else 10, accel), device=cuda, batch=64,
               cell="gru")
        # where batch_size=auto picks a large batch on the card (32,000 training windows: 1024, lr x4)
        record("loss-check-auto", lambda **kw: loss_check(X[:40000], 2 if args.dry_run else 5, accel), device=cuda,
               batch="auto", cell="gru")
        Xb = bundled_windows()
        for dev in (cuda, torch.device("cpu")):  # the bundled run's train stage, as shipped (early stopping)
            record("bundled-default", lambda device, **kw: default_fit(Xb, device), device=dev, batch="auto", cell="gru")
        if args.timegan:  # issue #14: below 0.08 on a card
            record("timegan-stocks", lambda device, **kw: timegan_stocks(device, 3 if args.dry_run else None), device=cuda,
                   batch=128, cell="gru")
        for dev in (cuda, torch.device("cpu")):  # the shipped default at --windows: >= 10x the CPU's threads on the card
            record("default-epochs", lambda device, **kw: default_fit(X, device, epochs=3), device=dev, batch="auto",
                   cell="gru")
        if args.million:  # 1M windows: train (3 epochs) + embed at the default config
            Xm = data(4000 if args.dry_run else 1_000_000, args.length, args.channels, seed=1)
            record("1M-default", lambda device, **kw: default_fit(Xm, device, epochs=3), device=cuda, batch="auto",
                   cell="gru")
    cpu = torch.device("cpu")
    Xc = X[: args.cpu_windows]
    record("tsatlas", ours, X=Xc, device=cpu, batch=256, epochs=args.epochs, cell="gru")
    record("bare-fp32", bare, X=Xc, device=cpu, batch=256, epochs=args.epochs, cell="gru", bf16=False)
    print(json.dumps(info))
    lines = ["| case | device | cell | batch | train windows/s | embed windows/s |", "|---|---|---|---|---|---|"]
    for r in rows:
        if r["case"] not in ("tsatlas", "bare-fp32", "bare-bf16"):
            continue
        lines.append(f"| {r['case']} | {r['device']} | {r['cell']} | {r['batch']} | "
                     f"{r.get('train_windows_per_s', float('nan')):,.0f} | {r.get('embed_windows_per_s', float('nan')):,.0f} |"
                     + (f" {r['error'][:80]}" if "error" in r else ""))
    defaults = [r for r in rows if r["case"] in ("bundled-default", "default-epochs", "1M-default")]
    if defaults:
        lines += ["", "| default config | device | windows | batch (auto) | lr | epochs run | train s | embed s | "
                  "best val loss |", "|---|---|---|---|---|---|---|---|---|"]
        for r in defaults:
            lines.append(f"| {r['case']} | {r['device']} | " + (f"{r['error'][:80]} |" if "error" in r else
                         f"{r['windows']:,} | {r['batch']} | {r['lr']:.3g} | {r['epochs_run']} | {r['train_s']} | "
                         f"{r['embed_s']} | {r['best_val_loss']:.4f} |"))
    speed = {r["device"]: r.get("train_windows_per_s") for r in rows if r["case"] == "default-epochs" and "error" not in r}
    if speed.get("cuda") and speed.get("cpu"):
        lines += ["", f"Shipped default at {args.windows:,} windows (median epoch after the first, 3 epochs): "
                  f"{speed['cuda']:,.0f} train windows/s on CUDA, {speed['cpu']:,.0f} on the CPU "
                  f"({info['cpu_threads']} threads): {speed['cuda'] / speed['cpu']:.1f}x (target: at least 10x)."]
    at = {r["case"]: r.get("train_windows_per_s") for r in rows
          if r["device"] == "cuda" and r.get("batch") == info.get("auto_batch") and r["case"] in ("tsatlas", "bare-bf16")}
    if at.get("tsatlas") and at.get("bare-bf16"):
        lines += ["", f"At the batch auto picks for {args.windows:,} windows ({info['auto_batch']}): the train stage "
                  f"{at['tsatlas'] / at['bare-bf16']:.2f}x the bare bf16 loop (target: at least 0.9x)."]
    for r in rows:
        if r["case"] == "timegan-stocks":
            lines += ["", f"TimeGAN on Stocks at its defaults ({r['device']}): " + (r["error"][:80] if "error" in r else
                      f"{r['iterations_per_phase']} iterations per phase trained in {r['train_s']} s, discriminative "
                      f"score {r['discriminative']['mean']:.3f} +- {r['discriminative']['std']:.3f} min-max, "
                      f"{r['discriminative_standardised']['mean']:.3f} standardised")]
    print("\n".join(lines))
    if args.results and args.dry_run:
        print("--dry-run: nothing written to RESULTS.md (its numbers are the CPU's)")
    elif args.results:
        from benchmarks.common import write_results
        ratio = {r["device"]: r["train_windows_per_s"] for r in rows if r["case"] == "tsatlas" and r["batch"] == 256}
        bare_cpu = next((r["train_windows_per_s"] for r in rows if r["case"] == "bare-fp32" and r["device"] == "cpu"), None)
        note = (f"CPU: train stage {ratio['cpu'] / bare_cpu:.2f}x the bare loop (median of epochs 2..{args.epochs}). "
                if bare_cpu and "cpu" in ratio else "")
        for case, what in (("loss-check", "4,000 windows, 10 epochs"), ("loss-check-auto", "40,000 windows, 5 epochs")):
            check = next((r for r in rows if r["case"] == case and "error" not in r), None)
            if not check:
                continue
            note += (f"Default train config ({what}) on {info['device']}: best validation loss "
                     f"{check['cuda_val_loss']:.4f} on CUDA vs {check['cpu_val_loss']:.4f} on the CPU, a "
                     f"{100 * check['relative_gap']:.1f}% gap ({'within' if check['within_tolerance'] else 'OUTSIDE'} "
                     f"the {100 * LOSS_TOLERANCE:.0f}% tolerance); {check['cuda_windows_per_s']:,.0f} vs "
                     f"{check['cpu_windows_per_s']:,.0f} train windows/s. ")
        write_results("Train and embed throughput vs a bare torch loop (benchmarks/gpu_train.py)",
                       f"Card: {info['device']}. {args.cpu_windows:,} windows x {args.length} x {args.channels} on the CPU; "
                       f"the tsatlas and bare rows are GRU 64/16, patch 1, plain reconstruction. {note}\n\n"
                       + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
