"""Prefect flows (they order tasks and pass small references) and the `tsatlas` command."""
