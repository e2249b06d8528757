"""Job stores. ``open_store`` turns a store name into a store."""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError
from .base import DEFAULT_MAX_JOB_BYTES, Document, Entry, Store, Version
from .local import LocalStore

DEFAULT_STORE = "./jobs"

__all__ = [
    "DEFAULT_MAX_JOB_BYTES",
    "DEFAULT_STORE",
    "Document",
    "Entry",
    "LocalStore",
    "Store",
    "Version",
    "open_store",
]


def open_store(
    name: str, *, create: bool = False, max_job_bytes: int = DEFAULT_MAX_JOB_BYTES
) -> Store:
    """A directory path (the embedded default). ``s3://`` URLs come with the AWS store."""
    if name.startswith("s3://"):
        raise UsageError(f"store {name!r}: S3 stores are not available in this version")
    return LocalStore(Path(name), create=create, max_job_bytes=max_job_bytes)
