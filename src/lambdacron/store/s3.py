"""Jobs as objects under a prefix of an S3 bucket.

Claims and write-backs use S3 conditional requests: ``PutObject`` with ``If-Match: ETAG``
(``If-None-Match: *`` to create) and ``DeleteObject`` with ``If-Match``. S3 evaluates the
condition and the write atomically, so of two runners only one wins; the loser gets 412
PreconditionFailed, which becomes ConflictError. A 409 ConditionalRequestConflict (two
conditional writes in flight at once) is retried: it means "try again", not "you lost".

boto3 is imported here only, and only when an S3 store is opened. The client is configured
the standard way (credential chain, ``AWS_REGION``, ``AWS_ENDPOINT_URL``/``_S3``) with
botocore's ``standard`` retry mode; no hand-written retry loop for throttling.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from ..errors import (
    ConflictError,
    InvalidKeyError,
    JobNotFoundError,
    JobTooLargeError,
    StoreError,
)
from .base import DEFAULT_MAX_JOB_BYTES, Document, Entry, Store, Version
from .keys import check_relative_key, shard_of

#: Where the runner keeps its own objects: never a job, because job keys cannot start with '.'.
INTERNAL_PREFIX = ".lambdacron/"
_CONFLICT_RETRIES = 5


def make_s3_client(max_pool_connections: int = 32) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        config=Config(
            retries={"mode": "standard", "max_attempts": 5},
            max_pool_connections=max_pool_connections,
        ),
    )


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix/`` to (bucket, "some/prefix/")."""
    rest = url.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    if not bucket or "/" in bucket:
        raise InvalidKeyError(f"store {url!r}: expected s3://BUCKET/PREFIX/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return bucket, prefix


def _code(exc: Exception) -> tuple[str, int]:
    response = getattr(exc, "response", None) or {}
    error = response.get("Error", {})
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return str(error.get("Code", "")), int(status or 0)


def _server_time(response: dict[str, Any]) -> datetime:
    # PutObject does not return LastModified; the response's Date header is the server's
    # clock at the write, which is what LastModified would say.
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    try:
        return parsedate_to_datetime(headers["date"]).astimezone(UTC)
    except (KeyError, TypeError, ValueError):
        return datetime.fromtimestamp(0, UTC)


class S3Store(Store):
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        client: Any = None,
        max_job_bytes: int = DEFAULT_MAX_JOB_BYTES,
    ) -> None:
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        self.bucket = bucket
        self.prefix = prefix
        self.max_job_bytes = max_job_bytes
        self.client = client if client is not None else make_s3_client()

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def check_key(self, key: str) -> str:
        return check_relative_key(key)

    def _object_key(self, key: str) -> str:
        return self.prefix + self.check_key(key)

    def _fail(self, key: str, action: str, exc: Exception) -> StoreError:
        code, status = _code(exc)
        if code in ("NoSuchKey", "NotFound", "404") or status == 404:
            if code == "NoSuchBucket":
                return StoreError(f"{self.url}: no such bucket {self.bucket!r}")
            return JobNotFoundError(f"{key}: no such job")
        if code == "NoSuchBucket":
            return StoreError(f"{self.url}: no such bucket {self.bucket!r}")
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return StoreError(f"{key}: cannot {action}: access denied ({code})")
        detail = code or type(exc).__name__
        return StoreError(f"{key}: cannot {action}: {detail}: {exc}"[:500])

    # -- reading

    def list(self, shard: tuple[int, int] | None = None) -> Iterator[Entry]:
        try:
            if shard is None:
                yield from self._list_under(self.prefix)
                return
            index, count = shard
            # One delimited LIST names the top-level folders; then only ours are listed.
            paginator = self.client.get_paginator("list_objects_v2")
            folders: list[str] = []
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix, Delimiter="/"):
                for common in page.get("CommonPrefixes", ()):
                    name = common["Prefix"][len(self.prefix) :].rstrip("/")
                    if not name.startswith(".") and shard_of(name, count) == index:
                        folders.append(common["Prefix"])
                for item in page.get("Contents", ()):
                    name = item["Key"][len(self.prefix) :]
                    if shard_of(name, count) == index:
                        yield from self._entry(item)
            for folder in folders:
                yield from self._list_under(folder)
        except Exception as exc:
            if isinstance(exc, StoreError):
                raise
            raise self._fail(self.url, "list", exc) from exc

    def _list_under(self, prefix: str) -> Iterator[Entry]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", ()):
                yield from self._entry(item)

    def _entry(self, item: dict[str, Any]) -> Iterator[Entry]:
        name = item["Key"][len(self.prefix) :]
        if not name.endswith(".json"):
            return
        try:
            key = self.check_key(name)
        except InvalidKeyError:
            return  # internal objects and names that cannot be job keys
        yield Entry(key, Version(item["ETag"], item["LastModified"].timestamp()), int(item["Size"]))

    def read(self, key: str) -> Document:
        object_key = self._object_key(key)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=object_key)
        except Exception as exc:
            raise self._fail(key, "read", exc) from exc
        body = response["Body"]
        try:
            size = int(response.get("ContentLength", 0))
            if size > self.max_job_bytes:
                raise JobTooLargeError(
                    f"{key}: {size} bytes is over the {self.max_job_bytes}-byte limit"
                )
            data = body.read(self.max_job_bytes + 1)
        except StoreError:
            raise
        except Exception as exc:  # the connection broke mid-body
            raise self._fail(key, "read", exc) from exc
        finally:
            body.close()
        if len(data) > self.max_job_bytes:
            raise JobTooLargeError(f"{key}: over the {self.max_job_bytes}-byte limit")
        version = Version(response["ETag"], response["LastModified"].timestamp())
        return Document(key, data, version)

    # -- writing

    def _conditional(self, key: str, action: str, call: Any, **kwargs: Any) -> Any:
        object_key = self._object_key(key)
        for attempt in range(_CONFLICT_RETRIES):
            try:
                return call(Bucket=self.bucket, Key=object_key, **kwargs)
            except Exception as exc:
                code, status = _code(exc)
                if code == "PreconditionFailed" or status == 412:
                    if "IfNoneMatch" in kwargs:
                        raise ConflictError(f"{key}: a job with this key already exists") from exc
                    raise ConflictError(f"{key}: changed since it was read") from exc
                if code == "ConditionalRequestConflict" or status == 409:
                    time.sleep(0.05 * 2**attempt)
                    continue
                raise self._fail(key, action, exc) from exc
        raise ConflictError(f"{key}: conditional {action} kept conflicting")

    def create(self, key: str, body: bytes) -> Version:
        try:
            response = self._conditional(
                key,
                "create",
                self.client.put_object,
                Body=body,
                IfNoneMatch="*",
                ContentType="application/json",
            )
        except ConflictError:
            # botocore retries a PUT whose answer was lost; the retry then fails its own
            # If-None-Match. If the object holds exactly our bytes, the create succeeded.
            existing = self.read(key)
            if existing.body == body:
                return existing.version
            raise
        return Version(response["ETag"], _server_time(response).timestamp())

    def write(self, key: str, body: bytes, expected: Version) -> Version:
        response = self._conditional(
            key,
            "write",
            self.client.put_object,
            Body=body,
            IfMatch=expected.token,
            ContentType="application/json",
        )
        return Version(response["ETag"], _server_time(response).timestamp())

    def read_internal(self, name: str) -> bytes | None:
        try:
            response = self.client.get_object(
                Bucket=self.bucket, Key=self.prefix + INTERNAL_PREFIX + name
            )
            data: bytes = response["Body"].read()
            return data
        except Exception:  # absent or unreadable: the caller rebuilds it
            return None

    def write_internal(self, name: str, body: bytes) -> None:
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=self.prefix + INTERNAL_PREFIX + name,
                Body=body,
                ContentType="application/json",
            )
        except Exception as exc:
            raise self._fail(INTERNAL_PREFIX + name, "write", exc) from exc

    def delete(self, key: str, expected: Version | None = None) -> None:
        object_key = self._object_key(key)
        if expected is None:
            # S3 deletes a missing key silently; say so instead, and delete what we saw.
            try:
                head = self.client.head_object(Bucket=self.bucket, Key=object_key)
            except Exception as exc:
                raise self._fail(key, "delete", exc) from exc
            expected = Version(head["ETag"], head["LastModified"].timestamp())
        self._conditional(key, "delete", self.client.delete_object, IfMatch=expected.token)
