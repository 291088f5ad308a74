"""Errors a user can act on. The CLI prints their message as one line and exits non-zero."""

import re

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/@\s:]*):(?P<password>[^/@\s]*)@")


def redact(text: str) -> str:
    """`text` with the password of every URL in it (scheme://user:password@host) replaced by ***."""
    return _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", str(text))


class TsatlasError(Exception):
    """Base class for errors caused by input, config or storage rather than by a bug. The
    message never carries a URL's password (it is redacted), since it is printed and logged."""

    def __init__(self, message: str = "", *args: object):
        super().__init__(redact(message), *args)


class InputError(TsatlasError):
    """The input data is unusable; the message names the file, column and value."""


class ConfigError(TsatlasError):
    """A config value is invalid; the message names the key."""


class StorageError(TsatlasError):
    """The artifact store is unreachable or an artifact is corrupt."""


class CorruptArtifactError(StorageError):
    """A stored artifact does not match its recorded sha256."""


class NonFiniteLossError(TsatlasError):
    """Training produced a NaN or infinite loss; nothing is stored and a retry would not help."""
