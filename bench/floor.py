"""The floor under a steady tick: what no implementation of the tick can go below here.

    python bench/floor.py                       # local: N = 100,000 files, D = 1,000 due
    python bench/floor.py --store s3 --n 10000 --due 100

Local: a steady tick on a directory must stat every file, or it cannot see an edit made in
place, and must make each due job's result durable: write a temporary file, fsync it,
rename it over the job, fsync the folder. At most once adds a second such write per due
job (the claim, before the run). Measured with the tightest Python loop for the stats and 8
threads for the writes.

S3 (moto_server on loopback, as in tick_bench.py): a steady tick that lists must fetch
ceil(N/1000) LIST pages, and PUT each due job's claim and result. Measured as the server's
own time for those requests, sent raw (no botocore), one at a time.

Each is printed next to the baseline tick on the same jobs. Figures only, no assertions.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tick_bench import _noop_action, populate_local, populate_s3, start_moto, workload


def stat_everything(root: Path) -> float:
    begin = time.perf_counter()
    seen = 0
    for folder in os.scandir(root):
        if folder.is_dir():
            with os.scandir(folder.path) as scan:
                for entry in scan:
                    st = entry.stat(follow_symlinks=False)
                    seen += st.st_size > 0
    return time.perf_counter() - begin


def durable_replace(path: Path) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, b'{"when": "* * * * *", "execution_count": 1}')
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def durable_writes(paths: list[Path]) -> float:
    begin = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(durable_replace, paths))
    return time.perf_counter() - begin


def baseline(store: Any, t0: datetime) -> float:
    """The baseline's steady tick (its second), as tick_bench.py measures it."""
    from baseline import baseline_tick

    tick = t0.replace(second=0, microsecond=0) + timedelta(minutes=1)
    baseline_tick(store, tick, _noop_action())
    begin = time.perf_counter()
    baseline_tick(store, tick + timedelta(minutes=1), _noop_action())
    return time.perf_counter() - begin


def s3_floor(n: int, due: int) -> tuple[float, float, float]:
    """(baseline tick, raw LIST pages of all N keys, 2 D raw PUTs), on a fresh moto_server."""
    import urllib.request

    server = start_moto()
    try:
        endpoint = os.environ["AWS_ENDPOINT_URL"]
        t0 = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=15)
        populate_s3("floor", workload(n, due / n, t0))

        def request(url: str, data: bytes | None = None) -> bytes:
            method = "PUT" if data is not None else "GET"
            with urllib.request.urlopen(urllib.request.Request(url, data, method=method)) as r:
                body: bytes = r.read()
                return body

        begin = time.perf_counter()
        token = ""
        while True:
            query = "list-type=2&prefix=jobs/" + (f"&start-after={token}" if token else "")
            page = request(f"{endpoint}/floor?{query}")
            if b"<IsTruncated>true</IsTruncated>" not in page:
                break
            token = page.rsplit(b"<Key>", 1)[1].split(b"</Key>", 1)[0].decode()
        listing = time.perf_counter() - begin
        begin = time.perf_counter()
        # New keys: moto refuses an unsigned overwrite of a signed upload (a lower bound:
        # the tick's PUTs also carry If-Match).
        for i in range(2 * due):
            request(f"{endpoint}/floor/puts/{i:08d}.json", b"{}")
        puts = time.perf_counter() - begin
        return baseline_s3(n, due, t0), listing, puts
    finally:
        server.terminate()


def baseline_s3(n: int, due: int, t0: datetime) -> float:
    from lambdacron.store import open_store

    populate_s3("floor-baseline", workload(n, due / n, t0))
    return baseline(open_store("s3://floor-baseline/jobs/"), t0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", choices=("local", "s3"), default="local")
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=1_000)
    args = parser.parse_args()
    print(f"{args.store}: N = {args.n:,} jobs, D = {args.due:,} due; {os.cpu_count()} cores")
    if args.store == "s3":
        base, listing, writes = s3_floor(args.n, args.due)
        rows = [
            ("LIST pages of all N keys (server)", listing),
            ("2 D PUTs, claim and result (server)", writes),
            ("floor: both", listing + writes),
        ]
        floor = listing + writes
    else:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            t0 = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=15)
            jobs = workload(args.n, args.due / args.n, t0)
            populate_local(root, jobs, t0)
            paths = [root / key for key, _ in jobs]  # the due jobs come first
            listing = min(stat_everything(root) for _ in range(3))
            writes = min(durable_writes(paths[: args.due]) for _ in range(3))
            from lambdacron.store import LocalStore

            base = baseline(LocalStore(root), t0)
        floor = listing + 2 * writes
        rows = [
            ("stat every file (tightest loop)", listing),
            ("D durable atomic writes (8 threads)", writes),
            ("floor, results only: stat + D writes", listing + writes),
            ("floor, claim + result: stat + 2D writes", floor),
        ]
    print(f"{'baseline steady tick':<42}{base:8.3f} s")
    print(f"{'  a twentieth of it (the 20x target)':<42}{base / 20:8.3f} s")
    for label, seconds in rows:
        print(f"{label:<42}{seconds:8.3f} s")
    print(f"{'best speed-up a listing tick can reach':<42}{base / floor:8.1f}x")


if __name__ == "__main__":
    main()
