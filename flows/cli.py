"""The `tsatlas` command.

    tsatlas run [--data PATH_OR_URL] [--root URL] [--config FILE.yaml] [--set stage.key=value ...] [--seed N] [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from typing import Any

# Prefect's ephemeral API needs ~20 s on a fresh PREFECT_HOME; its 20 s default can time out.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
# The core's log lines (stage starts and ends, warnings) also go to the run's log in Prefect.
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "tsatlas")
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")  # core calls outside a run
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def _parser() -> argparse.ArgumentParser:
    from tsatlas import __version__

    p = argparse.ArgumentParser(prog="tsatlas", description="An atlas of unlabeled time series.")
    p.add_argument("--version", action="version", version=f"tsatlas {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the atlas flow (default: the bundled weather data into ./artifacts)")
    run.add_argument("--data", default=None, help="CSV or Parquet file, or a folder of them; path or fsspec URL (default: bundled data/weather.csv)")
    run.add_argument("--root", default="./artifacts", help="artifact store root: folder or fsspec URL (default: ./artifacts)")
    run.add_argument("--config", default=None, help="YAML file with sections ingest, windows, train, cluster, generate")
    run.add_argument("--set", dest="sets", action="append", default=[], metavar="STAGE.KEY=VALUE",
                     help="override one config key, e.g. --set train.epochs=5 (repeatable, applied after --config)")
    run.add_argument("--seed", type=int, default=None, help="seed for every random step")
    run.add_argument("--json", action="store_true", help="print the manifest as JSON instead of the summary")
    run.add_argument("-v", "--verbose", action="store_true", help="show Prefect's logs and full tracebacks")
    bf = sub.add_parser("backfill", help="run the atlas flow over past partitions [start, end)")
    bf.add_argument("--start", required=True, help="first partition's start, e.g. 1990-01-01")
    span = bf.add_mutually_exclusive_group(required=True)
    span.add_argument("--end", help="end of the last partition (exclusive): a whole number of --every after --start")
    span.add_argument("--partitions", type=int, help="how many partitions, instead of --end")
    bf.add_argument("--every", default="1d", help="partition length, e.g. 1d, 6h, 30d (default 1d)")
    bf.add_argument("--max-concurrency", type=int, default=2, help="partitions run at once (default 2)")
    bf.add_argument("--runner", choices=["threads", "dask"], default="threads",
                    help="where partitions run: threads in this process, or Dask workers (prefect-dask)")
    bf.add_argument("--dask-address", default=None,
                    help="a running Dask scheduler (tcp://host:8786); default: a local cluster of --max-concurrency workers")
    for a in ("--data", "--root", "--config", "--set", "--seed", "--json", "-v"):
        bf._add_action(next(x for x in run._actions if a in x.option_strings))
    sc = sub.add_parser("score", help="score new data with a trained run")
    sc.add_argument("--data", required=True, help="CSV or Parquet file (or a folder of them) with the trained run's channels")
    sc.add_argument("--model", default="latest", help="run id of a finished atlas run, or 'latest' (default)")
    sc.add_argument("--root", default="./artifacts", help="artifact store root (default: ./artifacts)")
    sc.add_argument("--json", action="store_true", help="print the result as JSON")
    sc.add_argument("-v", "--verbose", action="store_true", help="show Prefect's logs and full tracebacks")
    sv = sub.add_parser("serve", help="serve the atlas, backfill and score flows with their schedules (no work pool)")
    sv.add_argument("--prefect-file", default=None, help="deployment file to read (default: deployments/prefect.yaml)")
    sv.add_argument("-v", "--verbose", action="store_true", help="full tracebacks")
    au = sub.add_parser("automations", help="create the Prefect automations that mark killed runs Crashed")
    au.add_argument("--within", type=int, default=None,
                    help="seconds without a heartbeat before a run counts as crashed (default 90, at least 40)")
    au.add_argument("--notify", default=None, metavar="BLOCK",
                    help="also notify through this notification block, e.g. slack-webhook/ops")
    au.add_argument("-v", "--verbose", action="store_true", help="full tracebacks")
    rep = sub.add_parser("report", help="write one self-contained HTML report of a run")
    rep.add_argument("run_id", help="run id (see runs/ under the root), or 'latest'")
    rep.add_argument("--root", default="./artifacts", help="artifact store root (default: ./artifacts)")
    rep.add_argument("--out", default=None, help="also write the HTML to this local file")
    rep.add_argument("-v", "--verbose", action="store_true", help="full tracebacks")
    return p


def summary(m: dict[str, Any]) -> str:
    """A few lines a person reads after a run."""
    ing, tr, cl, ge = m["summary"]["ingest"], m["metrics"]["train"], m["metrics"]["cluster"], m["metrics"]["generate"]
    n, T, C = m["summary"]["windows"]["shape"]
    objective = tr.get("objective", "reconstruction")  # training loss: the objective's; validation: reconstruction (idec: joint)
    lines = [
        f"run {m['run_id']}",
        f"  data      {m['data']}",
        f"  ingest    {ing['rows_in']} rows in, {ing['series']} series, {len(ing['channels'])} channels, {ing['gaps_filled']} gaps filled"
        + (f", {ing['gaps_left']['runs']} longer gap(s) of {ing['gaps_left']['steps']} steps left out" if ing.get("gaps_left") else ""),
        f"            read as {ing.get('layout', '?')}: time column {ing.get('time_column')}"
        + (f" ({ing['time_format']})" if ing.get("time_format") else "") + ", id column "
        f"{ing.get('id_column')}, channels {', '.join(ing['channels'][:8])}{' ...' if len(ing['channels']) > 8 else ''}",
        f"  windows   {n} windows of {T} steps x {C} channels"
        + (f" ({m['summary']['windows']['left_out']} overlapping a longer gap left out)" if m["summary"]["windows"].get("left_out") else ""),
        f"  train     {tr['epochs']} epochs on {tr['device']}, {objective} loss {tr['train_loss']:.4f}, validation "
        f"{'idec' if objective == 'idec' else 'reconstruction'} loss {tr['val_loss']:.4f} (best {tr['best_val_loss']:.4f} at epoch {tr['best_epoch']})",
        f"  cluster   k={cl['k']}, sizes {cl['sizes']}, silhouette {cl['silhouette']:.3f}, Davies-Bouldin {cl['davies_bouldin']:.3f}"
        + (f", ARI {cl['ari']:.3f}, NMI {cl['nmi']:.3f}" if "ari" in cl else ""),
        f"  generate  {m['stages']['generate']['rows']} synthetic rows ({ge['n']} series, method {ge['method']})"
        + (f", marginal {ge['marginal']:.3f} (real floor {ge['marginal_real_floor']:.3f})" if "marginal" in ge else "")
        + (f", discriminative {ge['discriminative']['mean']:.3f} (0: indistinguishable)" if "discriminative" in ge else "")
        + (f", nearest-real ratio {ge['nearest_real_ratio']:.2f} (1: no copies)" if "nearest_real_ratio" in ge else ""),
        f"  manifest  {m['manifest_uri']}",
    ]
    return "\n".join(lines)


class _DropUserErrors(logging.Filter):
    """The CLI prints input and config errors as one line; drop Prefect's tracebacks of them."""

    def filter(self, record: logging.LogRecord) -> bool:
        from tsatlas.errors import TsatlasError

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, TsatlasError):
            return False
        msg = record.getMessage()
        return not any(f"{name}(" in msg or f"{name}:" in msg for name in ("InputError", "ConfigError", "StorageError"))


def _quiet_prefect() -> None:
    for name in ("prefect.flow_runs", "prefect.task_runs"):
        logging.getLogger(name).addFilter(_DropUserErrors())


class _Stderr(logging.StreamHandler):
    """A handler that writes to whatever sys.stderr is when a line is logged."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


class _Bars:
    """At a terminal: one rich progress bar per stage with long work (training epochs, evaluation
    fits), drawn below the stage lines and removed when the stage's work is done."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("  {task.description:<8}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=Console(stderr=True), transient=True)
        self.tasks: dict[str, int] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage not in self.tasks:
            if not self.tasks:
                self.progress.start()
            self.tasks[stage] = self.progress.add_task(stage, total=total)
        self.progress.update(self.tasks[stage], completed=done, total=total)
        if done >= total:
            self.progress.remove_task(self.tasks.pop(stage))

    def close(self) -> None:
        self.progress.stop()


def _stage_lines() -> None:
    """The core's progress (each stage as it starts, ends or is reused, with its seconds, and
    warnings) as plain lines on stderr, flushed at once, at a terminal or piped to a log."""
    log = logging.getLogger("tsatlas")
    if not any(isinstance(h, _Stderr) for h in log.handlers):
        h = _Stderr()
        h.setFormatter(logging.Formatter("tsatlas: %(message)s"))
        log.addHandler(h)
    log.setLevel(logging.INFO)
    log.propagate = False  # Prefect's console handler on the root would print them a second time


def cmd_run(args: argparse.Namespace) -> int:
    from tsatlas.config import load_config
    from tsatlas.ingest import BUNDLED_DATA, fingerprint, resolve_data
    from tsatlas.storage import Store, hide_secret, reveal

    cfg = load_config(args.config, args.sets, args.seed)
    data = hide_secret(resolve_data(args.data or BUNDLED_DATA))  # a URL's password is never a flow parameter
    fingerprint(reveal(data))  # fail fast on a missing file or an unknown storage scheme, before Prefect starts
    Store(args.root).ensure_writable()
    from flows.pipeline import atlas

    if not args.verbose:
        _quiet_prefect()
    _stage_lines()
    manifest = atlas(data=data, root=args.root, **cfg.sections())
    print(json.dumps(manifest, indent=2) if args.json else summary(manifest))
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    from tsatlas.ingest import BUNDLED_DATA, fingerprint, resolve_data
    from tsatlas.config import load_config
    from tsatlas.partitions import count_between, partition_bounds
    from tsatlas.storage import Store, hide_secret, reveal

    cfg = load_config(args.config, args.sets, args.seed)
    count = args.partitions if args.end is None else count_between(args.start, args.end, args.every)
    partition_bounds(args.start, count, args.every)  # a bad start, every or count stops here, before a run
    data = hide_secret(resolve_data(args.data or BUNDLED_DATA))
    fingerprint(reveal(data))
    Store(args.root).ensure_writable()
    from flows.backfill import backfill
    from flows.runners import task_runner

    runner = task_runner(args.runner, args.dask_address, args.max_concurrency)
    if runner is not None:
        backfill = backfill.with_options(task_runner=runner)
    if not args.verbose:
        _quiet_prefect()
    _stage_lines()
    rows = backfill(start=args.start, partitions=count, every=args.every, data=data, root=args.root,
                    max_concurrency=args.max_concurrency, **cfg.sections())
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            print(f"  {r['partition']}  {r['state']:<22} {r.get('manifest', '')}")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from tsatlas.ingest import fingerprint, resolve_data
    from tsatlas.storage import hide_secret, reveal

    data = hide_secret(resolve_data(args.data))
    fingerprint(reveal(data))
    from flows.score import score

    if not args.verbose:
        _quiet_prefect()
    r = score(data=data, model=args.model, root=args.root)
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        mix = ", ".join(f"{c}: {a:.0%} -> {b:.0%}" for c, (a, b) in enumerate(zip(r["train_share"], r["new_share"])))
        print(f"scored {r['windows']} windows of {r['data']} with run {r['model_run']}\n"
              f"  anomalies  {r['anomalies']} above the training threshold {r['threshold']:.4f}\n"
              f"  clusters   share in training -> in this data: {mix} (total variation {r['total_variation']:.3f})\n"
              f"  scores     {r['uri']}")
    return 0


SERVE_SUFFIX = "-serve"


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the deployments of deployments/prefect.yaml from this process, without a work pool,
    under their names plus SERVE_SUFFIX, so that the deployments `prefect deploy` made from the
    same file are never overwritten or paused by it; schedules (with their time zone),
    concurrency limits, parameters and descriptions are carried over."""
    import importlib
    from pathlib import Path

    import yaml
    from prefect import serve
    from prefect.schedules import Cron

    repo = Path(__file__).resolve().parents[1]
    spec = yaml.safe_load(Path(args.prefect_file or repo / "deployments" / "prefect.yaml").read_text())
    os.chdir(repo)  # entrypoints and the relative data paths of the deployment file resolve from the repository
    os.environ.setdefault("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "30")  # as the deployments' job variables say
    deployments = []
    for d in spec["deployments"]:
        path, name = d["entrypoint"].split(":")
        flow_obj = getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), name)
        schedules = [Cron(s["cron"], timezone=s.get("timezone"), active=s.get("active", True))
                     for s in d.get("schedules", []) if "cron" in s]
        params = dict(d.get("parameters", {}))
        if params.get("deployment"):  # the backfill's partitions run as this server's own atlas deployment
            params["deployment"] += SERVE_SUFFIX
        deployments.append(flow_obj.to_deployment(
            name=d["name"] + SERVE_SUFFIX, description=d.get("description"), parameters=params,
            schedules=schedules or None, concurrency_limit=d.get("concurrency_limit"),
            enforce_parameter_schema=d.get("enforce_parameter_schema", True)))
    serve(*deployments)
    return 0


def cmd_automations(args: argparse.Namespace) -> int:
    from flows.automations import install
    from tsatlas.errors import ConfigError

    if args.within is not None and args.within < 40:  # a live run's heartbeats are 30 s apart or more
        raise ConfigError(f"--within {args.within}: at least 40 seconds, or live runs would be marked Crashed")
    for name, automation_id in install(args.within, args.notify):
        print(f"automation {name}: {automation_id}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from tsatlas import catalog
    from tsatlas.report import render
    from tsatlas.storage import Store

    store = Store(args.root)
    manifest = catalog.read_manifest(store, args.run_id)
    page = render(manifest, catalog.read_run_plots(store, manifest)).encode()
    uri = catalog.write_report_page(store, manifest["run_id"], page)
    if args.out:
        from tsatlas.errors import ConfigError

        try:
            with open(args.out, "wb") as f:
                f.write(page)
        except OSError as e:
            raise ConfigError(f"--out {args.out}: cannot write the page ({e.strerror}); it is at {uri}") from e
    print(args.out or uri)
    return 0


def _on_sigterm(seen: list[int]) -> Any:
    """SIGTERM (`kill`, a supervisor, a container stop) unwinds like Ctrl-C, so that Prefect marks
    the run Crashed and stops the temporary API server it started (a plain SIGTERM exit skips
    both and leaves that server running). Returns the handler it replaced (None off the main
    thread, where handlers cannot be set)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: Any) -> None:
        seen.append(signum)
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not args.verbose:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from tsatlas.errors import TsatlasError

    from tsatlas import progress

    bars = _Bars() if sys.stderr.isatty() and args.command in ("run", "backfill") else None
    progress.set_sink(bars)
    terminated = []
    previous = _on_sigterm(terminated)
    try:
        commands = {"run": cmd_run, "backfill": cmd_backfill, "score": cmd_score, "serve": cmd_serve,
                    "automations": cmd_automations, "report": cmd_report}
        return commands[args.command](args)
    except TsatlasError as e:
        if args.verbose:
            raise
        print(f"tsatlas: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tsatlas: terminated" if terminated else "tsatlas: interrupted", file=sys.stderr)
        return 143 if terminated else 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        progress.set_sink(None)
        if bars is not None:
            bars.close()


if __name__ == "__main__":
    sys.exit(main())
