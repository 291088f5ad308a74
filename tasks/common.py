"""What every stage task shares: retry policy, the store, and the run logger."""

from __future__ import annotations

import logging
from typing import Any

from prefect import get_run_logger
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError
from prefect.states import Completed, State
from prefect.tasks import exponential_backoff

from tsatlas.catalog import StageRef
from tsatlas.errors import ConfigError, CorruptArtifactError, InputError, NonFiniteLossError
from tsatlas.storage import Store


def _retry_unless_user_error(task, task_run, state) -> bool:
    """Bad input, bad config (ValueError, which pandas' DateParseError and pydantic's
    ValidationError are), a corrupt artifact or a diverged fit fails at once: retrying cannot fix it."""
    try:
        state.result()
    except (InputError, ConfigError, CorruptArtifactError, NonFiniteLossError, ValueError):
        return False
    except Exception:
        return True
    return True


# Stage outputs are content-addressed in the store, so Prefect's own result cache is off: it
# would keep a second copy of each result (pickled by default) that can outlive the files it
# names, and a retry or a re-run already resumes from the store. `stage_state` shows the reuse.
STAGE_TASK = dict(
    retries=2,
    retry_delay_seconds=exponential_backoff(backoff_factor=2),
    retry_jitter_factor=0.5,
    retry_condition_fn=_retry_unless_user_error,
    cache_policy=NO_CACHE,
    persist_result=False,
)


def stage_state(ref: StageRef) -> StageRef | State:
    """What a stage task returns: a reused output as a Completed state named Cached (as the UI
    shows Prefect's own cache hits), with the store's content key in its message."""
    if ref.reused:
        return Completed(data=ref, name="Cached", message=f"reused {ref.stage} {ref.key} from the store ({ref.prefix})")
    return ref


def logger() -> logging.Logger | logging.LoggerAdapter:
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("tsatlas")


def block_options(credentials: str | None) -> dict[str, Any] | None:
    """s3fs options from the Prefect AwsCredentials block named `credentials`.

    The block is loaded inside each task, so the secret never travels as a flow or task
    parameter (which Prefect stores and shows). Without a block, s3fs uses the AWS_* variables
    or profile as usual.
    """
    if not credentials:
        return None
    try:
        from prefect_aws import AwsCredentials
    except ImportError:
        raise ConfigError(f"credentials block {credentials!r} given, but prefect-aws is not installed "
                          "(pip install 'tsatlas[aws]')") from None
    try:
        block = AwsCredentials.load(credentials)
    except ValueError:
        raise ConfigError(f"no AwsCredentials block named {credentials!r}") from None
    opts: dict[str, Any] = {}
    if block.aws_access_key_id:
        opts["key"] = block.aws_access_key_id
    if block.aws_secret_access_key:
        opts["secret"] = block.aws_secret_access_key.get_secret_value()
    if block.aws_session_token:
        opts["token"] = block.aws_session_token
    if block.profile_name:
        opts["profile"] = block.profile_name
    if block.region_name:
        opts["client_kwargs"] = {"region_name": block.region_name}
    if block.aws_client_parameters.endpoint_url:
        opts["endpoint_url"] = block.aws_client_parameters.endpoint_url
    return opts


def open_store(root: str, credentials: str | None = None) -> Store:
    return Store(root, block_options(credentials))
