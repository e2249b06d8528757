"""``lambdacron package``: the deployment zip for AWS Lambda, byte-for-byte reproducible.

The zip holds lambdacron and its pure-Python runtime dependency (tzdata, so time
zones work on any runtime image), taken from this installation: no download, no build
step, and the same zip serves x86_64 and arm64. boto3 is left out: the Lambda runtime
provides it. Entries are sorted and carry a fixed timestamp and mode, so the same sources
give the same bytes and the same CodeSha256, which is what lets ``deploy`` see "unchanged".
"""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path, PurePosixPath

#: Runtime dependencies shipped in the zip (boto3 is in the Lambda runtime already).
BUNDLED = ("tzdata",)
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def _package_files(name: str) -> Iterator[tuple[str, bytes]]:
    """The files of an installed distribution, as (archive path, bytes)."""
    distribution = metadata.distribution(name)
    for entry in distribution.files or ():
        path = PurePosixPath(str(entry))
        if path.suffix in (".pyc",) or "__pycache__" in path.parts or ".." in path.parts:
            continue
        if path.parts[0].endswith(".dist-info") and path.name not in (
            "METADATA",
            "LICENSE",
            "LICENSE.txt",
        ):
            continue
        yield str(path), Path(str(entry.locate())).read_bytes()


def _own_files() -> Iterator[tuple[str, bytes]]:
    # From the package directory itself, which also works for an editable install.
    root = Path(__file__).resolve().parent
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            yield f"lambdacron/{path.relative_to(root).as_posix()}", path.read_bytes()


def build_zip() -> bytes:
    files = dict(_own_files())
    for name in BUNDLED:
        files.update(_package_files(name))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, files[name])
    return buffer.getvalue()


def code_sha256(data: bytes) -> str:
    """The digest AWS Lambda reports as CodeSha256 (base64 of the SHA-256)."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()
