"""boto3 clients, made one way.

The region is ``AWS_REGION`` (what Lambda sets, and what these docs name), else
``AWS_DEFAULT_REGION`` (the only one boto3 itself reads), else the AWS profile's. Retries
are botocore's standard mode unless the caller says otherwise. A missing region is a user's
mistake, said in one line, not botocore's traceback. boto3 is imported on first use: only
the AWS paths need it.
"""

from __future__ import annotations

import os
from typing import Any

from .errors import UsageError

__all__ = ["client", "region"]


def region() -> str | None:
    """The region the environment names, or None to leave it to the AWS profile."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None


def client(
    service: str, *, session: Any = None, region_name: str | None = None, **config: Any
) -> Any:
    """A boto3 client for ``service``; ``config``: botocore ``Config`` options, standard
    retries by default. ``session``: a boto3 session to make it from; ``region_name``: a
    region given explicitly (a command's flag), before the environment's."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import InvalidRegionError, NoRegionError

    config.setdefault("retries", {"mode": "standard"})
    maker = session if session is not None else boto3.session.Session()
    try:
        return maker.client(service, region_name=region_name or region(), config=Config(**config))
    except NoRegionError:
        raise UsageError(
            f"{service}: no AWS region; set AWS_REGION (e.g. eu-central-1) or give your AWS"
            " profile a region"
        ) from None
    except InvalidRegionError as exc:
        raise UsageError(
            f"{_region_source(region_name)}: {exc.kwargs.get('region_name')!r} is not an AWS"
            " region name such as eu-central-1"
        ) from None


def _region_source(given: str | None) -> str:
    """Where the region a client was made for came from, to name it in an error."""
    if given:
        return "--region"
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        if os.environ.get(name):
            return name
    return "the AWS profile's region"
