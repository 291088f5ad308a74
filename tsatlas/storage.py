"""The artifact store: one root (a local folder or any fsspec URL), atomic writes,
sha256 on every read, and content-addressed stage outputs.

Layout under the root:
    stages/<stage>/<key>/<file>        a stage's files; <key> hashes its inputs, config and code
    stages/<stage>/<key>/_done.json    written last: the stage's reference (files and checksums)
    runs/<run_id>/manifest.json        one per run

Nothing here unpickles: tables are Parquet, metadata is JSON, weights are read by the
caller with torch.load(weights_only=True).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import posixpath
import re
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from tsatlas import __version__
from tsatlas.errors import CorruptArtifactError, StorageError, redact

log = logging.getLogger(__name__)

_SAFE_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._=+-]*$")


_SECRET_URLS: dict[str, str] = {}  # redacted URL -> the URL with its password, for this process only


def hide_secret(url: str) -> str:
    """The URL with its password redacted; the full URL stays in this process (reveal() returns
    it), so the password never becomes a flow parameter, a manifest field or a log line."""
    shown = redact(url)
    if shown != url:
        _SECRET_URLS[shown] = url
    return shown


def reveal(url: str) -> str:
    """The URL that hide_secret() redacted, password included (others unchanged)."""
    return _SECRET_URLS.get(url, url)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str, chunk: int = 8 << 20) -> str:
    """sha256 of a file, read in chunks (constant memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def cache_dir() -> str:
    """Local folder for verified copies of remote artifacts and memory-mapped arrays:
    TSATLAS_CACHE, else a private (0700) folder of this user's in the temp dir. A folder that is
    not this user's, or that others can write to, is refused."""
    d = os.environ.get("TSATLAS_CACHE") or os.path.join(tempfile.gettempdir(), f"tsatlas-cache-{os.getuid()}")
    os.makedirs(d, mode=0o700, exist_ok=True)
    st = os.stat(d)
    if st.st_uid != os.getuid() or st.st_mode & 0o022:
        raise StorageError(f"cache folder {d} belongs to another user or is writable by others: "
                           "set TSATLAS_CACHE to a private folder")
    return d


def digest(*parts: Any) -> str:
    """A stable short key from JSON-serialisable parts (configs, checksums, versions)."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


@cache
def code_version() -> str:
    """Package version plus a hash of the core and task sources: code changes invalidate stage keys."""
    h = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for pkg in (here, here.parent / "tasks"):
        for f in sorted(pkg.glob("*.py")):
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return f"{__version__}+{h.hexdigest()[:12]}"


def fs_options(url: str, storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """fsspec options for `url`. For s3:// the endpoint comes from AWS_ENDPOINT_URL_S3 or
    AWS_ENDPOINT_URL, and credentials from the usual AWS variables or profile (botocore's
    own chain); retries and timeouts are bounded so an outage surfaces as an error that the
    task's retries can handle, instead of hanging."""
    opts = dict(storage_options or {})
    if url.startswith(("s3://", "s3a://")):
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            opts.setdefault("endpoint_url", endpoint)
        opts.setdefault("config_kwargs", {"connect_timeout": 5, "read_timeout": 60,
                                          "retries": {"max_attempts": 2, "mode": "standard"}})
    return opts


def check_key(key: str) -> str:
    """Refuse keys that could escape the root (absolute paths, `..`, odd characters)."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(not _SAFE_PART.match(p) or p in (".", "..") for p in parts):
        raise StorageError(f"unsafe artifact key {key!r}: use letters, digits and . _ = + - between slashes")
    return key


def _corrupt(uri: str, expected: str, got: str) -> CorruptArtifactError:
    return CorruptArtifactError(f"{uri}: checksum mismatch (expected sha256 {expected[:12]}..., got {got[:12]}...); "
                                "the artifact is corrupt: run again, and the stage that wrote it is recomputed")


def io_reason(e: BaseException) -> str:
    """One line about an I/O failure: the error type and its first line, never the options passed."""
    text = (getattr(e, "strerror", None) or str(e) or "").splitlines()
    return f"{type(e).__name__}: {text[0][:200]}" if text else type(e).__name__


@dataclass
class Pending:
    """A file being written for Store.writing; `sha256` is set once it is published."""

    path: str
    sha256: str | None = None


class Store:
    """Artifacts under one root URL (`./artifacts`, `file:///x`, `s3://bucket/prefix`, ...).

    Args:
        root: local path or fsspec URL.
        storage_options: passed to the fsspec filesystem (e.g. s3fs endpoint, credentials).
    """

    def __init__(self, root: str, storage_options: dict[str, Any] | None = None):
        try:
            fs, base = fsspec.core.url_to_fs(root, **fs_options(root, storage_options))
        except (ValueError, ImportError) as e:
            raise StorageError(f"cannot open store root {root!r}: {e}") from None
        self.fs = fs
        self.local = isinstance(fs, LocalFileSystem)
        self.base = os.path.abspath(base) if self.local else base.rstrip("/")
        self.root = self.base if self.local else f"{self._protocol()}://{self.base}"

    def browser_url(self, key: str, expires: int = 7 * 24 * 3600) -> str | None:
        """A URL a browser can open for `key` (a presigned URL on S3, valid `expires` seconds), or
        None where there is none (a local path: a web page cannot open it)."""
        if self.local or not hasattr(self.fs, "sign"):
            return None
        try:
            return self.fs.sign(self.path(key), expiration=expires)
        except Exception:  # a store that cannot sign: no link rather than a broken one
            return None

    def ensure_writable(self) -> None:
        """Fail now, with one line, when a local root cannot be written (read-only, not a folder)."""
        if not self.local:
            return
        try:
            os.makedirs(self.base, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.base, prefix=".tmp-probe-"):
                pass
        except OSError as e:
            raise StorageError(f"{self.root}: cannot write to the artifact root ({io_reason(e)})") from None

    def _protocol(self) -> str:
        p = self.fs.protocol
        return p[0] if isinstance(p, (tuple, list)) else p

    def path(self, key: str) -> str:
        return posixpath.join(self.base, check_key(key)) if not self.local else os.path.join(self.base, check_key(key))

    def uri(self, key: str) -> str:
        return self.path(key) if self.local else f"{self._protocol()}://{self.path(key)}"

    def exists(self, key: str) -> bool:
        try:
            return self.fs.exists(self.path(key))
        except Exception as e:
            raise StorageError(f"{self.uri(key)}: store unreachable ({io_reason(e)})") from e

    # -- bytes -----------------------------------------------------------------
    def put_bytes(self, key: str, data: bytes) -> str:
        """Write atomically and return the sha256: a temp file and a rename locally, one PUT elsewhere."""
        path = self.path(key)
        try:
            if self.local:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
                try:
                    with os.fdopen(fd, "wb") as f:
                        f.write(data)
                        f.flush()
                        os.fsync(f.fileno())
                    os.replace(tmp, path)
                except BaseException:
                    if os.path.exists(tmp):
                        os.unlink(tmp)
                    raise
            else:
                # Object stores publish an object only when its upload completes.
                self.fs.pipe_file(path, data)
        except Exception as e:
            raise StorageError(f"{self.uri(key)}: write failed ({io_reason(e)})") from e
        return sha256_bytes(data)

    def get_bytes(self, key: str, sha256: str | None = None) -> bytes:
        """Read and, when `sha256` is given, verify the content."""
        try:
            data = self.fs.cat_file(self.path(key))
        except FileNotFoundError:
            raise StorageError(f"{self.uri(key)}: artifact missing") from None
        except Exception as e:
            raise StorageError(f"{self.uri(key)}: read failed ({io_reason(e)})") from e
        if sha256 is not None and sha256_bytes(data) != sha256:
            raise _corrupt(self.uri(key), sha256, sha256_bytes(data))
        return data

    # -- files too big to hold in memory ----------------------------------------
    @contextmanager
    def writing(self, key: str) -> Iterator[Pending]:
        """A local file to write `key` into piece by piece (e.g. with a ParquetWriter): beside its
        destination in a local store, else in cache_dir(). Published by put_file when the block
        ends without an error (its sha256 is then in `.sha256`), deleted otherwise."""
        if self.local:
            folder = os.path.dirname(self.path(key))
            os.makedirs(folder, exist_ok=True)
        else:
            folder = cache_dir()
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        os.close(fd)
        pending = Pending(tmp)
        try:
            yield pending
            pending.sha256 = self.put_file(key, tmp)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def put_file(self, key: str, local: str) -> str:
        """Publish a finished local file under `key` and return its sha256. Locally the file is
        renamed into place (it must live on the same filesystem, as `writing` arranges);
        elsewhere it is uploaded in one put, which the object store publishes only when
        complete."""
        sha = sha256_file(local)
        path = self.path(key)
        try:
            if self.local:
                with open(local, "rb") as f:
                    os.fsync(f.fileno())
                os.replace(local, path)
            else:
                self.fs.put_file(local, path)
        except Exception as e:
            raise StorageError(f"{self.uri(key)}: write failed ({io_reason(e)})") from e
        return sha

    def local_copy(self, key: str, sha256: str) -> str:
        """A verified local path to read `key` from without loading it into memory: the file
        itself in a local store, else a copy in cache_dir() named by its checksum (reused once
        its checksum is confirmed again, downloaded afresh when it does not match)."""
        if self.local:
            path = self.path(key)
            if not os.path.exists(path):
                raise StorageError(f"{self.uri(key)}: artifact missing")
            got = sha256_file(path)
            if got != sha256:
                raise _corrupt(self.uri(key), sha256, got)
            return path
        path = os.path.join(cache_dir(), f"{sha256}{os.path.splitext(key)[1]}")
        if os.path.exists(path) and sha256_file(path) == sha256:
            return path
        tmp = f"{path}.{uuid.uuid4().hex[:8]}.part"
        try:
            self.fs.get_file(self.path(key), tmp)
        except FileNotFoundError:
            raise StorageError(f"{self.uri(key)}: artifact missing") from None
        except Exception as e:
            raise StorageError(f"{self.uri(key)}: read failed ({io_reason(e)})") from e
        got = sha256_file(tmp)
        if got != sha256:
            os.unlink(tmp)
            raise _corrupt(self.uri(key), sha256, got)
        os.replace(tmp, path)
        return path

    # -- typed helpers ---------------------------------------------------------
    def put_json(self, key: str, obj: Any) -> str:
        return self.put_bytes(key, json.dumps(obj, indent=2, sort_keys=True, default=str).encode())

    def get_json(self, key: str, sha256: str | None = None) -> Any:
        return json.loads(self.get_bytes(key, sha256))

    def put_table(self, key: str, table: pa.Table) -> str:
        """Parquet written straight to a file and published (no in-memory copy of the encoded bytes)."""
        with self.writing(key) as out:
            pq.write_table(table, out.path, compression="zstd")
        return out.sha256

    def get_table(self, key: str, sha256: str | None = None, columns: list[str] | None = None) -> pa.Table:
        data = self.get_bytes(key, sha256)
        try:
            return pq.read_table(pa.BufferReader(data), columns=columns)
        except pa.ArrowInvalid as e:
            raise StorageError(f"{self.uri(key)}: not a readable Parquet file ({e})") from None

    # -- stages ----------------------------------------------------------------
    def stage(self, stage: str, key: str) -> StageWriter:
        """A writer for one attempt at a stage output (use as a context manager)."""
        return StageWriter(self, stage, key)

    def delete_prefix(self, key: str) -> None:
        try:
            self.fs.rm(self.path(key), recursive=True)
        except (FileNotFoundError, OSError):
            pass


class StageWriter:
    """Writes one attempt at a stage output under stages/<stage>/<key>/<attempt>/ and publishes
    it by writing stages/<stage>/<key>/_done.json last.

    Each attempt has its own folder, so two runs computing the same stage at once never
    overwrite each other's files: whichever publishes last wins, and both references stay
    valid. An attempt that raises removes its folder; one killed outright leaves an
    unreferenced folder that nothing reads.
    """

    def __init__(self, store: Store, stage: str, key: str):
        self.store, self.stage, self.key = store, stage, key
        self.prefix = check_key(f"stages/{stage}/{key}/{uuid.uuid4().hex[:12]}")
        self.files: dict[str, str] = {}

    def __enter__(self) -> StageWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.store.delete_prefix(self.prefix)

    def put_bytes(self, name: str, data: bytes) -> str:
        self.files[name] = self.store.put_bytes(f"{self.prefix}/{name}", data)
        return self.files[name]

    def put_table(self, name: str, table: pa.Table) -> str:
        self.files[name] = self.store.put_table(f"{self.prefix}/{name}", table)
        return self.files[name]

    @contextmanager
    def local_file(self, name: str) -> Iterator[str]:
        """Store.writing for one of this attempt's files: yields the local path to write."""
        with self.store.writing(f"{self.prefix}/{name}") as out:
            yield out.path
        self.files[name] = out.sha256

    def publish(self, ref: dict[str, Any]) -> None:
        """Make this attempt the stage's output: stages/<stage>/<key>/_done.json, written last."""
        self.store.put_json(f"stages/{self.stage}/{self.key}/_done.json", ref)
