"""tsatlas: an atlas of unlabeled time series (core library, no Prefect)."""

__version__ = "0.1.0"
