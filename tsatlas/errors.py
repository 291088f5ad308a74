"""Errors a user can act on. The CLI prints their message as one line and exits non-zero."""


class TsatlasError(Exception):
    """Base class for errors caused by input, config or storage rather than by a bug."""


class InputError(TsatlasError):
    """The input data is unusable; the message names the file, column and value."""


class ConfigError(TsatlasError):
    """A config value is invalid; the message names the key."""


class StorageError(TsatlasError):
    """The artifact store is unreachable or an artifact is corrupt."""


class CorruptArtifactError(StorageError):
    """A stored artifact does not match its recorded sha256."""
