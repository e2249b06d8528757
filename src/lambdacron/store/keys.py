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
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidKeyError(
            f"key {shortened(key)!r}: longer than {MAX_KEY_LENGTH} characters ({len(key)})"
        )
    if "\\" in key or "\0" in key or not key.isprintable():
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


def shortened(key: str, keep: int = 60) -> str:
    """``key`` cut in its middle to at most ``keep`` characters: a message about a key too
    long to be one stays a readable line, and still shows how the key starts and ends."""
    if len(key) <= keep:
        return key
    half = (keep - 3) // 2
    return f"{key[:half]}...{key[-half:]}"


def is_reserved(part: str) -> bool:
    """A path component no job key may have: the runner's own files, and hidden names
    (editors' lock and backup files among them). Such names are passed over in silence;
    '.' and '..' are not names but path syntax, so they are not reserved, they are wrong."""
    return part.startswith(".") and part not in (".", "..")


def printable_key(name: str) -> str:
    """``name`` as one printable line: a backslash, a character that is not printable, and
    a byte that is not UTF-8 (a file name's surrogate escape) are written as escapes.

    No valid key has a backslash, so an escaped name can never be taken for a job's key.
    """
    if name.isprintable() and "\\" not in name:
        return name
    out: list[str] = []
    for char in name:
        if char == "\\":
            out.append("\\\\")
        elif "\udc80" <= char <= "\udcff":  # os.fsdecode's escape of a byte that is not UTF-8
            out.append(f"\\x{ord(char) - 0xDC00:02x}")
        elif char.isprintable():
            out.append(char)
        else:
            out.append(char.encode("unicode_escape", "backslashreplace").decode("ascii"))
    return "".join(out)


def listed_key(name: str) -> tuple[str, str | None] | None:
    """What a store's listing makes of the name ``name`` (relative to the store) it found.

    None: not a job and not meant to be one (no ``.json`` ending, or a reserved name), passed
    over in silence. ``(key, None)``: a job key. ``(printable name, problem)``: a name meant
    as a job that no job key can address, to be reported rather than dropped.
    """
    if not name.endswith(".json"):
        return None
    parts = name.split("/")
    if any(part[:1] == "." and part not in (".", "..") for part in parts):
        return None  # reserved
    if (
        name.isprintable()
        and "\\" not in name
        and len(name) <= MAX_KEY_LENGTH
        and not ("" in parts or "." in parts or ".." in parts)
    ):
        return name, None  # what check_relative_key accepts, checked once, not twice
    if any("\udc80" <= char <= "\udcff" for char in name):
        problem = "the name is not valid UTF-8"
    elif "" in parts:
        problem = "the key has an empty path segment"
    elif "." in parts:
        problem = "the key has a '.' path segment"
    elif ".." in parts:
        problem = "the key has a '..' path segment"
    elif "\\" in name:
        problem = "the name has a backslash"
    elif not name.isprintable():
        odd = "".join(dict.fromkeys(c for c in name if not c.isprintable()))
        problem = f"the name has a character that is not printable ({printable_key(odd)})"
    else:
        problem = f"the key is longer than {MAX_KEY_LENGTH} characters"
    return printable_key(name), f"{problem}; lambdacron cannot address it"


def shard_of(key: str, shards: int) -> int:
    """The shard (0..shards-1) a key belongs to, decided by its first path component.

    Sharding by the top-level folder lets a shard list only its own folders. Generated
    keys (``new_key``) start with two random hex digits, which spreads them evenly; keys
    you choose yourself are spread by their first folder (or file name).
    """
    top = key.split("/", 1)[0]
    # surrogateescape: a file name that is not UTF-8 still has a shard (its own bytes').
    digest = hashlib.blake2b(top.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


def new_key() -> str:
    """A unique job key in the sharded layout ``HH/HEX32.json`` (256 top-level folders)."""
    name = uuid.uuid4().hex
    return f"{name[:2]}/{name}.json"
