"""What every stage task shares: retry policy, the store, and the skip-if-done rule."""

from __future__ import annotations

import logging
from typing import Any

from prefect import get_run_logger
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError
from prefect.tasks import exponential_backoff

from tsatlas.errors import ConfigError, CorruptArtifactError, InputError
from tsatlas.storage import Store


def _retry_unless_user_error(task, task_run, state) -> bool:
    """Bad input, bad config or a corrupt artifact fails at once: retrying cannot fix it."""
    try:
        state.result()
    except (InputError, ConfigError, CorruptArtifactError):
        return False
    except Exception:
        return True
    return True


# Stage outputs are content-addressed in the store, so Prefect's own result cache is off:
# it would pickle results, and a retry or a re-run already resumes from the store.
STAGE_TASK = dict(
    retries=2,
    retry_delay_seconds=exponential_backoff(backoff_factor=2),
    retry_jitter_factor=0.5,
    retry_condition_fn=_retry_unless_user_error,
    cache_policy=NO_CACHE,
    persist_result=False,
)


def logger() -> logging.Logger | logging.LoggerAdapter:
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("tsatlas")


def open_store(root: str, storage_options: dict[str, Any] | None = None) -> Store:
    return Store(root, storage_options)
