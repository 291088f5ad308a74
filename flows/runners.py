"""Task runners a flow can be given from the command line: Prefect's default thread pool, or
Prefect's Dask task runner (prefect-dask) on a local Dask cluster or an existing scheduler."""

from __future__ import annotations

from typing import Any

from tsatlas.errors import ConfigError


def task_runner(name: str = "threads", address: str | None = None, workers: int | None = None) -> Any:
    """The task runner called `name`, or None for the flow's own default (threads).

    Args:
        name: "threads" or "dask".
        address: a running Dask scheduler, e.g. tcp://10.0.0.5:8786; default: start a local cluster.
        workers: worker processes of that local cluster (one thread each); default 2.
    """
    if name == "threads":
        return None
    if name != "dask":
        raise ConfigError(f"--runner {name!r}: expected threads or dask")
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError:
        raise ConfigError("--runner dask needs prefect-dask: pip install 'tsatlas[dask]'") from None
    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": workers or 2, "threads_per_worker": 1, "processes": True,
                                          "dashboard_address": None})
