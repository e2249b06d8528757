"""Job stores. ``open_store`` turns a store name into a store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
    name: str,
    *,
    create: bool = False,
    max_job_bytes: int = DEFAULT_MAX_JOB_BYTES,
    client: Any = None,
) -> Store:
    """``s3://BUCKET/PREFIX/`` or a directory path (the embedded default).

    ``create`` makes a missing directory; a bucket is never created.
    """
    if name.startswith("s3://"):
        from .s3 import S3Store, parse_s3_url  # boto3 only when S3 is asked for

        bucket, prefix = parse_s3_url(name)
        return S3Store(bucket, prefix, client=client, max_job_bytes=max_job_bytes)
    if "://" in name:
        raise UsageError(f"store {name!r}: use a directory path or s3://BUCKET/PREFIX/")
    return LocalStore(Path(name), create=create, max_job_bytes=max_job_bytes)
