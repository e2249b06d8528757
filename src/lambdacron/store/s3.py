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

import itertools
import re
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from .. import aws
from ..errors import (
    ConflictError,
    InvalidKeyError,
    JobNotFoundError,
    JobTooLargeError,
    StoreError,
    UnreadableJobError,
)
from .base import DEFAULT_MAX_JOB_BYTES, Document, Entry, Store, Version
from .keys import is_reserved, listed_key, shard_of, shortened

#: Where the runner keeps its own objects: never a job, because job keys cannot start with '.'.
INTERNAL_PREFIX = ".lambdacron/"
#: S3's limit on an object's key, prefix included, in bytes of UTF-8.
MAX_OBJECT_KEY_BYTES = 1024
_CONFLICT_RETRIES = 5
#: Ranges of a listing in flight at once.
_LIST_WORKERS = 4
#: What a user may have set on a job object besides its body, as GetObject names it and
#: PutObject takes it. A PUT replaces all of it, so a write carries it over from the version
#: it replaces. Not tags (reading and writing them are permissions of their own) nor
#: encryption (the bucket's default applies to every write).
#: Content-Encodings that say the body is compressed. boto3 hands the body over as stored,
#: never decoded.
_COMPRESSIONS = frozenset({"gzip", "x-gzip", "deflate", "br", "compress", "x-compress", "zstd"})
_CARRIED = (
    "Metadata",
    "CacheControl",
    "ContentDisposition",
    "ContentEncoding",
    "ContentLanguage",
    "StorageClass",
)


def _timestamp(value: Any) -> datetime:
    """botocore's timestamp parser, with a fast path for the ISO 8601 of XML bodies.

    botocore parses every timestamp with dateutil, the largest part of the client's work on
    a listing (see docs/scaling.md). Headers (RFC 1123 dates) and anything else still go to
    botocore's own parser.
    """
    from botocore.utils import parse_timestamp

    if isinstance(value, str) and value[:4].isdigit():
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    result: datetime = parse_timestamp(value)
    return result


def make_s3_client(max_pool_connections: int = 32) -> Any:
    import boto3
    import botocore.session

    # A session of our own: the parser setting must not leak into the caller's clients.
    session = botocore.session.get_session()
    session.get_component("response_parser_factory").set_parser_defaults(
        timestamp_parser=_timestamp
    )
    return aws.client(
        "s3",
        session=boto3.Session(botocore_session=session),
        retries={"mode": "standard", "max_attempts": 5},
        max_pool_connections=max_pool_connections,
    )


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix/`` to (bucket, "some/prefix/")."""
    rest = url.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    if not bucket or "/" in bucket:
        raise InvalidKeyError(f"store {url!r}: expected s3://BUCKET/PREFIX/")
    for problem in (bucket_problem(bucket), prefix_problem(prefix)):
        if problem:
            raise InvalidKeyError(f"store {url!r}: {problem}")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return bucket, prefix


# botocore's own check (legacy buckets in us-east-1 may hold upper case and '_'), and a
# first character S3 requires.
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")


def bucket_problem(bucket: str) -> str | None:
    """What makes ``bucket`` no bucket name, or None: refused here rather than as a
    botocore validation error at the first listing."""
    if _BUCKET.fullmatch(bucket):
        return None
    return (
        f"bucket {bucket!r} is not a bucket name (letters, digits, '.', '-' and '_', "
        "starting with a letter or digit)"
    )


def prefix_problem(prefix: str) -> str | None:
    """What makes ``prefix`` a prefix no job key under it can be addressed by, or None:
    every key under it would hold the same empty, '.' or '..' segment, or character."""
    if not prefix:
        return None
    parts = prefix.removesuffix("/").split("/")
    if any(part in ("", ".", "..") for part in parts):
        return f"prefix {prefix!r} must not contain '.', '..' or empty segments"
    if "\\" in prefix or not prefix.isprintable():
        return f"prefix {prefix!r}: use '/' separators and printable names"
    if len(prefix.removesuffix("/").encode()) + len("/x.json") > MAX_OBJECT_KEY_BYTES:
        return (
            f"prefix {shortened(prefix)!r} is {len(prefix.encode())} bytes long: no job key "
            f"fits under it (S3 keys are at most {MAX_OBJECT_KEY_BYTES} bytes)"
        )
    return None


def _code(exc: Exception) -> tuple[str, int]:
    response = getattr(exc, "response", None) or {}
    error = response.get("Error", {})
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return str(error.get("Code", "")), int(status or 0)


def _retry_attempts(exc: Exception) -> int:
    """How many times botocore retried the request that failed with ``exc``."""
    response = getattr(exc, "response", None) or {}
    attempts = response.get("ResponseMetadata", {}).get("RetryAttempts", 0)
    return attempts if isinstance(attempts, int) else 0


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
        list_page_size: int = 1000,
    ) -> None:
        #: Keys per LIST request (S3's maximum is 1,000).
        self.list_page_size = list_page_size
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        self.bucket = bucket
        self.prefix = prefix
        self.max_job_bytes = max_job_bytes
        self.client = client if client is not None else make_s3_client()
        self._pool: ThreadPoolExecutor | None = None
        # Listing in ranges needs keys in order and StartAfter honoured: true of general
        # purpose buckets, not of directory buckets (S3 Express, named ``...--x-s3``), and
        # not of every S3-compatible service. A listing that shows otherwise turns it off.
        self._ranges = not bucket.endswith("--x-s3")
        self._pool_lock = threading.Lock()
        # Per key, the version last read or written and what a write must carry over from
        # it. Only objects that have something to carry are kept: few, so the map stays
        # small in a store of millions.
        self._carried: dict[str, tuple[str, dict[str, Any]]] = {}

    def _carry(self, key: str, token: str, properties: dict[str, Any]) -> None:
        if properties:
            self._carried[key] = (token, properties)
        else:
            self._carried.pop(key, None)

    def _carried_from(self, key: str, expected: Version) -> dict[str, Any]:
        # Every write names a version this store read or wrote (a write is conditional on
        # it), so the properties recorded for it are those of the object being replaced.
        kept = self._carried.get(key)
        return kept[1] if kept is not None and kept[0] == expected.token else {}

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def check_key(self, key: str) -> str:
        key = super().check_key(key)
        # S3 counts bytes of the whole key; refused here, a key too long for S3 is one line
        # naming it, not a KeyTooLongError from the first write.
        size = len((self.prefix + key).encode())
        if size > MAX_OBJECT_KEY_BYTES:
            raise InvalidKeyError(
                f"key {shortened(key)!r}: {size} bytes with the prefix {shortened(self.prefix)!r}; "
                f"S3 keys are at most {MAX_OBJECT_KEY_BYTES} bytes (UTF-8)"
            )
        return key

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
        if code == "InvalidObjectState":
            # A lifecycle rule moved a job nobody wrote for months to an archive class; S3
            # serves it only after a restore. Every tick reports it until then.
            error = getattr(exc, "response", {}).get("Error", {})
            archived = error.get("StorageClass") or "an archive storage class"
            return StoreError(
                f"{key}: cannot {action}: the object is archived ({archived}); restore it or "
                "copy it back to STANDARD, and keep the store's prefix out of lifecycle "
                "rules that archive"
            )
        detail = code or type(exc).__name__
        return StoreError(f"{key}: cannot {action}: {detail}: {exc}"[:500])

    # -- reading

    def list(
        self, shard: tuple[int, int] | None = None, *, splits: Sequence[str] = ()
    ) -> Iterator[Entry]:
        try:
            if shard is None:
                ordered = all(a < b for a, b in itertools.pairwise(splits))
                if splits and ordered and self._ranges:
                    yield from self._list_ranges(splits)
                else:
                    yield from self._list_under(self.prefix)
                return
            index, count = shard
            # One delimited LIST names the top-level folders; then only ours are listed.
            folders: list[str] = []
            for page in self._pages(self.prefix, delimiter="/"):
                for common in page.get("CommonPrefixes", ()):
                    name = common["Prefix"][len(self.prefix) :].rstrip("/")
                    if not is_reserved(name) and shard_of(name, count) == index:
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

    def _list_ranges(self, splits: Sequence[str]) -> Iterator[Entry]:
        # A paginated listing is a chain: each page names where the next starts. StartAfter
        # breaks the chain, so ranges (None, s0], (s0, s1], ... (sk, None) list at once.
        # With splits about a page apart, each range is one LIST, as many as the chain would
        # make; a range that grew since the splits were taken just takes another page.
        ranges = list(zip([None, *splits], [*splits, None], strict=True))
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(_LIST_WORKERS, thread_name_prefix="lambdacron-list")
            pool = self._pool
        for entries in pool.map(lambda bounds: list(self._list_range(*bounds)), ranges):
            yield from entries

    def _list_range(self, after: str | None, through: str | None) -> Iterator[Entry]:
        previous = "" if after is None else self.prefix + after
        last = None if through is None else self.prefix + through
        for page in self._pages(self.prefix, start_after=previous or None):
            items = page.get("Contents", [])
            for item in items:
                if item["Key"] <= previous:
                    self._ranges = False
                    raise StoreError(
                        f"{self.url}: the listing ignored StartAfter or came out of order; "
                        "listing in one sequence from now on"
                    )
                previous = item["Key"]
                if last is not None and previous > last:
                    return  # the next range's
                yield from self._entry(item)
            if items and items[-1]["Key"] == last:
                return  # the range is complete; the next page is the next range's

    def _list_under(self, prefix: str) -> Iterator[Entry]:
        for page in self._pages(prefix):
            for item in page.get("Contents", ()):
                yield from self._entry(item)

    def _pages(
        self, prefix: str, *, start_after: str | None = None, delimiter: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Each page of a listing, following its continuation tokens."""
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
            "Prefix": prefix,
            "MaxKeys": self.list_page_size,
        }
        if start_after is not None:
            kwargs["StartAfter"] = start_after
        if delimiter is not None:
            kwargs["Delimiter"] = delimiter
        while True:
            page: dict[str, Any] = self.client.list_objects_v2(**kwargs)
            yield page
            if not page.get("IsTruncated"):
                return
            kwargs["ContinuationToken"] = page["NextContinuationToken"]

    def _entry(self, item: dict[str, Any]) -> Iterator[Entry]:
        listed = listed_key(item["Key"][len(self.prefix) :])
        if listed is None:
            return  # not a job: the runner's own objects, other files
        key, problem = listed
        version = Version(item["ETag"], item["LastModified"].timestamp())
        yield Entry(key, version, int(item["Size"]), problem)

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
        self._check_encoding(key, response.get("ContentEncoding"), data)
        version = Version(response["ETag"], response["LastModified"].timestamp())
        self._carry(key, version.token, {n: response[n] for n in _CARRIED if response.get(n)})
        return Document(key, data, version)

    @staticmethod
    def _check_encoding(key: str, encoding: str | None, data: bytes) -> None:
        """Refuse a body stored compressed (``aws s3 cp --content-encoding gzip``), naming
        the header: decoded as it is, it would only be "not UTF-8 text". A JSON body that
        merely carries such a header is read as the JSON it is."""
        codings = {part.strip().lower() for part in (encoding or "").split(",")}
        if not codings & _COMPRESSIONS:
            return
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            raise UnreadableJobError(
                f"{key}: Content-Encoding {encoding!r}: the body is stored compressed, and a "
                "job is read as stored; upload it uncompressed, without Content-Encoding"
            ) from None

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
                        conflict = ConflictError(f"{key}: a job with this key already exists")
                    else:
                        conflict = ConflictError(f"{key}: changed since it was read")
                    # Whether an earlier attempt of this same call was sent: only then can
                    # the precondition have failed on our own write.
                    conflict.retried = attempt > 0 or _retry_attempts(exc) > 0
                    raise conflict from exc
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
        except ConflictError as conflict:
            # botocore retries a PUT whose answer was lost; the retry then fails its own
            # If-None-Match. If an earlier attempt was sent and the object holds exactly our
            # bytes, the create succeeded. A key that existed before the first attempt is a
            # conflict even when its body is the same: create never adopts another's job.
            if conflict.retried:
                existing = self.read(key)
                if existing.body == body:
                    return existing.version
            raise
        # A new object carries nothing; the same bytes as a deleted one make the same ETag.
        self._carried.pop(key, None)
        return Version(response["ETag"], _server_time(response).timestamp())

    def write(self, key: str, body: bytes, expected: Version) -> Version:
        carried = self._carried_from(key, expected)
        response = self._conditional(
            key,
            "write",
            self.client.put_object,
            Body=body,
            IfMatch=expected.token,
            ContentType="application/json",
            **carried,
        )
        self._carry(key, response["ETag"], carried)
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
        self._carried.pop(key, None)
