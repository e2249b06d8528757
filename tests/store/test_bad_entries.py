"""Entries of a local store that cannot be jobs: each is one named line in ``tick`` and a row
in ``ls``, and the rest of the store still ticks."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Run
from helpers import append_job, command_job, place
from lambdacron.errors import InvalidKeyError
from lambdacron.store import LocalStore

NOW = "2026-01-01T00:01:00Z"
#: Each bad entry a store can hold, and the problem its line must name.
PROBLEMS = {
    "loop.json": "a symbolic link loop",
    "dangling.json": "a dangling symbolic link",
    "escape.json": "a symbolic link that leads out of the store",
    "fifo.json": "a FIFO, not a regular file",
    "folder.json": "a directory, not a regular file",
    "sock.json": "a socket, not a regular file",
    "to-fifo.json": "a symbolic link to a FIFO, not a regular file",
    "sub/deep-loop.json": "a symbolic link loop",
    "tab\\tname.json": "the name has a character that is not printable (\\t); "
    "lambdacron cannot address it",
    "new\\nline.json": "the name has a character that is not printable (\\n); "
    "lambdacron cannot address it",
    "caf\\xe9.json": "the name is not valid UTF-8; lambdacron cannot address it",
    "back\\\\slash.json": "the name has a backslash; lambdacron cannot address it",
}


def make_bad_entries(root: Path, outside: Path) -> None:
    (root / "loop.json").symlink_to("loop.json")
    (root / "dangling.json").symlink_to("nowhere.json")
    (outside / "secret.json").write_text(json.dumps({"when": "* * * * *"}))
    (root / "escape.json").symlink_to(outside / "secret.json")
    os.mkfifo(root / "fifo.json")
    (root / "folder.json").mkdir()
    (root / "to-fifo.json").symlink_to("fifo.json")
    (root / "sub").mkdir()
    (root / "sub" / "deep-loop.json").symlink_to("deep-loop.json")
    (root / "tab\tname.json").write_text("{}")
    (root / "new\nline.json").write_text("{}")
    (root / os.fsdecode(b"caf\xe9.json")).write_text("{}")
    (root / "back\\slash.json").write_text("{}")
    # A socket file: bound, then left behind when its socket is closed.
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(root / "sock.json"))
    finally:
        server.close()


@pytest.fixture
def bad_store(tmp_path: Path) -> Path:
    root = tmp_path / "jobs"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    make_bad_entries(root, outside)
    # AF_UNIX paths are limited to about 100 bytes; tmp_path is short enough here.
    return root


def test_the_listing_names_each_bad_entry_and_lists_the_good_ones(bad_store: Path) -> None:
    place(bad_store, "good.json", {"when": "@daily"})
    place(bad_store, "sub/good.json", {"when": "@daily"})
    place(bad_store, "folder.json/inner.json", {"when": "@daily"})  # a folder's jobs still count
    entries = list(LocalStore(bad_store).list())
    assert {e.key: e.problem for e in entries if e.problem is not None} == PROBLEMS
    assert sorted(e.key for e in entries if e.problem is None) == [
        "folder.json/inner.json",
        "good.json",
        "sub/good.json",
    ]


def test_a_tick_reports_each_bad_entry_on_one_line_and_runs_the_rest(
    run_cli: Run, tmp_path: Path, bad_store: Path
) -> None:
    out = tmp_path / "ran.txt"
    place(bad_store, "good.json", append_job("* * * * *", out, "good"))
    result = run_cli("tick", "--store", str(bad_store), "--now", NOW, timeout=60)
    assert result.returncode == 0, result.stderr
    assert out.read_text() == "good\n"
    lines = result.stderr.splitlines()
    for key, problem in PROBLEMS.items():
        expected = f"invalid {key}: {problem} (skipped; file left as it is)"
        assert sum(line.endswith(expected) for line in lines) == 1, (expected, result.stderr)
    assert f"{len(PROBLEMS) + 1} jobs, 1 due, 1 ran, 0 failed, {len(PROBLEMS)} invalid" in (
        result.stdout
    )
    assert "store error" not in result.stderr


def test_ls_shows_each_bad_entry_as_a_row_with_its_problem(run_cli: Run, bad_store: Path) -> None:
    place(bad_store, "good.json", command_job("@daily", ["true"]))
    result = run_cli("ls", "--store", str(bad_store), "--json", "--now", NOW)
    assert result.returncode == 0, result.stderr
    rows = {row["key"]: row for row in json.loads(result.stdout)}
    assert {key: (row["status"], row["error"]) for key, row in rows.items() if row["error"]} == {
        key: ("invalid", problem) for key, problem in PROBLEMS.items()
    }
    assert rows["good.json"]["error"] is None
    table = run_cli("ls", "--store", str(bad_store), "--now", NOW)
    assert len(table.stdout.splitlines()) == len(PROBLEMS) + 2  # the header, one row each


def test_a_shard_listing_names_the_bad_entries_of_its_own_folders(bad_store: Path) -> None:
    store = LocalStore(bad_store)
    parts = [list(store.list((i, 3))) for i in range(3)]
    problems = {e.key: e.problem for part in parts for e in part if e.problem is not None}
    assert problems == PROBLEMS
    assert sum(len(part) for part in parts) == len(PROBLEMS)


def test_reading_a_fifo_never_blocks(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "x.json")
    os.mkfifo(tmp_path / "y.json")
    (tmp_path / "z.json").symlink_to("y.json")
    store = LocalStore(tmp_path)
    errors: list[BaseException] = []

    def read_all() -> None:
        for key in ("x.json", "z.json"):
            try:
                store.read(key)
            except BaseException as exc:
                errors.append(exc)

    reader = threading.Thread(target=read_all, daemon=True)
    reader.start()
    reader.join(30)
    if reader.is_alive():  # blocked in open(): let it go before failing
        for name in ("x.json", "y.json"):
            os.close(os.open(tmp_path / name, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(30)
        pytest.fail("reading a FIFO blocked")
    assert [type(e) for e in errors] == [InvalidKeyError, InvalidKeyError]
    assert [str(e) for e in errors] == [
        "x.json: a FIFO, not a regular file",
        "z.json: a FIFO, not a regular file",
    ]


def test_the_runner_s_own_file_is_never_read_from_a_fifo(tmp_path: Path) -> None:
    (tmp_path / ".lambdacron").mkdir()
    os.mkfifo(tmp_path / ".lambdacron" / "index.json")
    store = LocalStore(tmp_path)
    result: list[bytes | None] = [b"unset"]
    reader = threading.Thread(
        target=lambda: result.__setitem__(0, store.read_internal("index.json")), daemon=True
    )
    reader.start()
    reader.join(30)
    if reader.is_alive():
        fifo = tmp_path / ".lambdacron" / "index.json"
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(30)
        pytest.fail("reading the index from a FIFO blocked")
    assert result == [None]


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder another user can reach (pytest's own temporary folders are private to us)."""
    path = Path(tempfile.mkdtemp(prefix="lambdacron-perm-"))
    path.chmod(0o777)
    yield path
    for folder, _, _ in os.walk(path):
        os.chmod(folder, 0o755)  # so that it can be removed when the tests are not root
    shutil.rmtree(path)


def cli_as_another_user(commands: list[list[str]], scratch: Path) -> list[tuple[int, str, str]]:
    """Run lambdacron's CLI in a forked child, as 'nobody' when we are root.

    Root reads any file whatever its mode, so only another user can meet an unreadable file.
    The child forks rather than executes: this interpreter lives where 'nobody' may not go.
    It runs each command once as itself first, on an empty store, so that every module the
    command needs is loaded before it gives up its rights.
    """
    from lambdacron import cli

    outputs = [(scratch / f"{i}.out", scratch / f"{i}.err") for i in range(len(commands))]
    warm = scratch / "warm"
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            # pytest has replaced sys.stdout and sys.stderr: the CLI prints to what they are.
            sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115
            place(warm, "w.json", command_job("* * * * *", ["true"]))
            for argv in commands:
                cli.main([*argv[:-4], "--store", str(warm), *argv[-2:]])
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            codes = []
            for argv, (out, err) in zip(commands, outputs, strict=True):
                with open(out, "w") as sys.stdout, open(err, "w") as sys.stderr:
                    codes.append(cli.main(argv))
            (scratch / "codes").write_text(json.dumps(codes))
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    codes = json.loads((scratch / "codes").read_text())
    return [
        (code, out.read_text(), err.read_text())
        for code, (out, err) in zip(codes, outputs, strict=True)
    ]


def test_a_file_the_runner_cannot_read_is_one_line_and_the_rest_ticks(
    shared_dir: Path,
) -> None:
    root = shared_dir / "jobs"
    root.mkdir()
    root.chmod(0o777)
    out = shared_dir / "ran.txt"
    place(root, "good.json", command_job("* * * * *", ["sh", "-c", f"echo good >> {out}"]))
    place(root, "sub/secret.json", {"when": "* * * * *"})
    (root / "sub" / "secret.json").chmod(0)
    place(root, "locked/hidden.json", {"when": "* * * * *"})
    (root / "locked").chmod(0)
    scratch = shared_dir / "scratch"
    scratch.mkdir(mode=0o777)
    scratch.chmod(0o777)
    store = ["--store", str(root), "--now", NOW]
    tick, ls = cli_as_another_user([["tick", *store], ["ls", "--json", *store]], scratch)
    assert tick[0] == 0, tick[2]
    assert out.read_text() == "good\n"
    lines = tick[2].splitlines()
    for key, problem in (
        ("sub/secret.json", "the runner may not read it (permission denied)"),
        ("locked/", "a folder the runner may not list (permission denied)"),
    ):
        expected = f"invalid {key}: {problem} (skipped; file left as it is)"
        assert sum(line.endswith(expected) for line in lines) == 1, (expected, tick[2])
    assert "3 jobs, 1 due, 1 ran, 0 failed, 2 invalid" in tick[1]
    rows = {row["key"]: (row["status"], row["error"]) for row in json.loads(ls[1])}
    assert rows == {
        "good.json": ("ok", None),
        "locked/": ("invalid", "a folder the runner may not list (permission denied)"),
        "sub/secret.json": ("invalid", "the runner may not read it (permission denied)"),
    }
