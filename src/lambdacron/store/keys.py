"""Job keys: relative ``/``-separated paths ending in ``.json``, the same in every store."""

from __future__ import annotations

import hashlib
import uuid

from ..errors import InvalidKeyError

MAX_KEY_LENGTH = 1024


def check_relative_key(key: str) -> str:
    """Return ``key`` normalised, or raise InvalidKeyError saying what is wrong with it.

    Names starting with '.' are reserved: the runner keeps its own files there, so they can
    never be mistaken for jobs.
    """
    if not isinstance(key, str) or not key:
        raise InvalidKeyError("key: must be a non-empty relative path ending in .json")
    if "\\" in key or "\0" in key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidKeyError(f"key {key!r}: use '/' separators and printable names")
    # String operations, not PurePosixPath: this runs for every read and write.
    if key.startswith("/"):
        raise InvalidKeyError(f"key {key!r}: must be relative to the store, not absolute")
    parts = key.split("/")
    if any(part in ("..", ".", "") for part in parts):
        raise InvalidKeyError(f"key {key!r}: must not contain '.', '..' or empty components")
    if any(part.startswith(".") for part in parts):
        raise InvalidKeyError(f"key {key!r}: names starting with '.' are reserved")
    if not key.endswith(".json"):
        raise InvalidKeyError(f"key {key!r}: job keys end in .json")
    return key  # with no '', '.' or '..' components it is already in normal form


def shard_of(key: str, shards: int) -> int:
    """The shard (0..shards-1) a key belongs to, decided by its first path component.

    Sharding by the top-level folder lets a shard list only its own folders. Generated
    keys (``new_key``) start with two random hex digits, which spreads them evenly; keys
    you choose yourself are spread by their first folder (or file name).
    """
    top = key.split("/", 1)[0]
    digest = hashlib.blake2b(top.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


def new_key() -> str:
    """A unique job key in the sharded layout ``HH/HEX32.json`` (256 top-level folders)."""
    name = uuid.uuid4().hex
    return f"{name[:2]}/{name}.json"
