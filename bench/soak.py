"""Soak: does a long-running ``lambdacron serve`` leak or slow down?

    python bench/soak.py                       # 5 minutes, 300 jobs
    python bench/soak.py --duration 1200       # 20 minutes
    python bench/soak.py --smoke               # about 30 s, for CI-style checks

Starts one real ``lambdacron serve`` on a temporary local store under /tmp, holding
``--jobs`` jobs: fast ones (``rate(1 seconds)``, ``rate(5 seconds)``, every-minute cron),
failing ones with ``retry`` and an ``on_failure`` command notice, ones killed by their
timeout, ones that leave a background process behind (killed with the run's session), a
few Python jobs, and slow or idle ones (hourly and daily cron, far ``at()``, disabled) to
make up the number. While serve runs, this script adds, edits, renames and removes jobs
under ``churn/``, keeping their number about constant, and places ``at()`` jobs that run
once and delete themselves.

Every ``--sample`` seconds it reads from /proc: the serve process's open file descriptors,
threads, RSS and CPU time; its child processes and the zombies among them; "strays", the
processes started for this soak (found by a variable in their environment) that are not
serve's children (a job's background process that outlived its run); and the store's
leftover temporary files (``*.tmp``). It prints one row per sample, then per resource a
verdict line: its growth per hour (least squares over the samples after the warm-up), what
that extrapolates to after a day, and "steady" or "GROWS" (the median of the last third of
the samples above the median of the first third by more than the resource's noise).
Throughput and lateness per window tell whether serve slows down. Figures only, never an
assertion; the exit status is 0 unless serve could not be run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024

# ----------------------------------------------------------------------------- jobs


def command_job(when: str, argv: list[str], **extra: Any) -> dict[str, Any]:
    return {"when": when, "run": {"type": "command", "details": {"command": argv}}, **extra}


def at_time(moment: datetime) -> str:
    return f"at({moment.strftime('%Y-%m-%dT%H:%M:%SZ')})"


def workload(count: int, notices: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """The standing jobs: a fixed set of busy ones, then idle ones up to ``count``."""
    notice = ["sh", "-c", f"cat > /dev/null; echo n >> {notices}"]
    busy: list[tuple[str, dict[str, Any]]] = []
    busy += [(f"fast1/{i}.json", command_job("rate(1 seconds)", ["true"])) for i in range(3)]
    busy += [(f"fast5/{i}.json", command_job("rate(5 seconds)", ["true"])) for i in range(12)]
    busy += [(f"minute/{i}.json", command_job("* * * * *", ["true"])) for i in range(40)]
    retry = {"attempts": 2, "backoff_seconds": 1, "max_backoff_seconds": 2}
    busy += [
        (
            f"failing/{i}.json",
            command_job(
                "rate(10 seconds)",
                ["sh", "-c", "echo failing on purpose >&2; exit 3"],
                retry=retry,
                on_failure={"command": notice},
            ),
        )
        for i in range(6)
    ]
    busy += [
        (
            f"timeout/{i}.json",
            command_job("rate(15 seconds)", ["sleep", "30"], timeout_seconds=1),
        )
        for i in range(2)
    ]
    # The background sleep outlives the job's main process: the run's session is killed.
    busy += [
        (f"background/{i}.json", command_job("rate(10 seconds)", ["sh", "-c", "sleep 20 & echo"]))
        for i in range(2)
    ]
    busy += [
        (
            f"python/{i}.json",
            {
                "when": "rate(30 seconds)",
                "run": {"type": "python", "details": {"script": "print(sum(range(1000)))"}},
            },
        )
        for i in range(2)
    ]
    yield from busy
    far = datetime.now(UTC) + timedelta(days=30)
    idle = ["0 * * * *", "30 3 * * *", "rate(7 minutes)", at_time(far), "*/5 * * * *"]
    for i in range(max(0, count - len(busy))):
        extra: dict[str, Any] = {"enabled": False} if i % 10 == 9 else {}
        yield f"idle/{i:04d}.json", command_job(idle[i % len(idle)], ["true"], **extra)


def place(stage: Path, path: Path, document: dict[str, Any]) -> None:
    """Whole or not at all, as README asks of an edit while a runner is busy; the temporary
    file is outside the store, so any ``*.tmp`` left in the store is lambdacron's."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = stage / f"{path.name}.{os.getpid()}.{threading.get_ident()}"
    temp.write_text(json.dumps(document))
    os.replace(temp, path)


@dataclass
class Churn:
    """Adds, edits, renames and removes jobs under ``churn/`` while serve runs."""

    root: Path
    stage: Path
    target: int
    rng: random.Random
    counts: dict[str, int] = field(default_factory=dict)
    _serial: int = 0

    def _keys(self) -> list[Path]:
        return sorted((self.root / "churn").glob("*.json"))

    def _new_job(self) -> dict[str, Any]:
        soon = datetime.now(UTC) + timedelta(seconds=self.rng.randint(3, 40))
        when = self.rng.choice(["rate(3 seconds)", "rate(20 seconds)", "* * * * *", at_time(soon)])
        return command_job(when, ["true"])

    def step(self) -> None:
        keys = self._keys()
        below = len(keys) < self.target
        ops = (
            ["add"] * (3 if below else 1)
            + ["edit", "edit", "rename"]
            + ["remove"] * (1 if below else 3)
        )
        op = self.rng.choice(ops) if keys else "add"
        try:
            if op == "add":
                self._serial += 1
                place(
                    self.stage, self.root / "churn" / f"n{self._serial:06d}.json", self._new_job()
                )
            elif op == "edit":
                path = self.rng.choice(keys)
                document = json.loads(path.read_text())
                document["when"] = self._new_job()["when"]
                document["note"] = f"edited {self.rng.random()}"
                place(self.stage, path, document)
            elif op == "rename":
                self._serial += 1
                path = self.rng.choice(keys)
                os.rename(path, path.with_name(f"r{self._serial:06d}.json"))
            else:
                self.rng.choice(keys).unlink()
        except (FileNotFoundError, json.JSONDecodeError):
            # The runner deleted it (an at() job's last run) or is replacing it: try again.
            op = "raced"
        self.counts[op] = self.counts.get(op, 0) + 1


# ----------------------------------------------------------------------------- /proc


@dataclass
class Sample:
    t: float
    fds: int
    threads: int
    rss_mb: float
    cpu_s: float
    children: int
    zombies: int
    strays: int
    tmp_files: int
    jobs: int
    runs: int


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: split after the last ')'.
    return text[text.rindex(")") + 2 :].split()


def processes_of(serve_pid: int, marker: bytes) -> tuple[int, int, int]:
    """Serve's children, the zombies among them, and the soak's other processes."""
    children = zombies = strays = 0
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == serve_pid:
            continue
        fields = _stat_fields(int(name))
        if fields is None:
            continue
        state, ppid = fields[0], int(fields[1])
        if ppid == serve_pid:
            children += 1
            zombies += state == "Z"
            continue
        try:
            environ = Path(f"/proc/{name}/environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            strays += 1
    return children, zombies, strays


def tmp_files(root: Path) -> tuple[int, int]:
    """Leftover temporary files in the store, and the job files."""
    temps = jobs = 0
    for _, _, files in os.walk(root):
        for name in files:
            temps += name.endswith(".tmp")
            jobs += name.endswith(".json") and not name.startswith(".")
    return temps, jobs


def sample(pid: int, root: Path, marker: bytes, start: float, log: Path) -> Sample | None:
    try:
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    values = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    fields = _stat_fields(pid)
    cpu = (int(fields[11]) + int(fields[12])) / _TICKS_PER_S if fields else 0.0
    children, zombies, strays = processes_of(pid, marker)
    temps, jobs = tmp_files(root)
    return Sample(
        t=time.monotonic() - start,
        fds=fds,
        threads=int(values["Threads"]),
        rss_mb=int(values["VmRSS"].split()[0]) / 1024,
        cpu_s=cpu,
        children=children,
        zombies=zombies,
        strays=strays,
        tmp_files=temps,
        jobs=jobs,
        runs=count_runs(log),
    )


_RAN = re.compile(r"^\S+ ran \S+ \(scheduled \S+\): (\w+), ([\d.]+) (ms|s|min) late")
_UNIT_MS = {"ms": 1.0, "s": 1000.0, "min": 60_000.0}


def count_runs(log: Path) -> int:
    """The runs serve has logged so far (one line each, on its standard error)."""
    with open(log, "rb") as stream:
        return sum(b" ran " in line for line in stream)


def lateness_ms(lines: list[str]) -> list[float]:
    return [float(m[2]) * _UNIT_MS[m[3]] for line in lines if (m := _RAN.match(line)) is not None]


# ----------------------------------------------------------------------------- figures

#: Per resource: how it is read from a sample, its unit, and the change that is noise (runs
#: in flight come and go between samples, each holding pipes, a thread, a child).
RESOURCES: list[tuple[str, str, float]] = [
    ("fds", "", 4),
    ("threads", "", 2),
    ("rss_mb", "MB", 2.0),
    ("children", "", 4),
    ("zombies", "", 2),
    ("strays", "", 2),
    ("tmp_files", "", 1),
]


def slope_per_hour(ts: list[float], ys: list[float]) -> float:
    if len(ts) < 2:
        return 0.0
    mean_t, mean_y = statistics.fmean(ts), statistics.fmean(ys)
    var = sum((t - mean_t) ** 2 for t in ts)
    if var == 0:
        return 0.0
    cov = sum((t - mean_t) * (y - mean_y) for t, y in zip(ts, ys, strict=True))
    return cov / var * 3600


def verdicts(samples: list[Sample], warmup_s: float) -> list[str]:
    kept = [s for s in samples if s.t >= warmup_s] or samples
    third = max(1, len(kept) // 3)
    lines = []
    for name, unit, noise in RESOURCES:
        ts = [s.t for s in kept]
        ys = [float(getattr(s, name)) for s in kept]
        slope = slope_per_hour(ts, ys)
        first, last = statistics.median(ys[:third]), statistics.median(ys[-third:])
        grows = last - first > noise
        day = ys[-1] + max(0.0, slope) * 24
        lines.append(
            f"{name:<10} {ys[0]:>8.1f} -> {ys[-1]:>8.1f}{unit:<2} max {max(ys):>8.1f}  "
            f"median first/last third {first:>7.1f} / {last:>7.1f}  "
            f"{slope:>+9.1f}{unit}/h  in a day ~{day:>9.1f}{unit}  "
            f"{'GROWS' if grows else 'steady'}"
        )
    return lines


def pace(samples: list[Sample], log_lines: list[str], warmup_s: float) -> list[str]:
    """Throughput, CPU and lateness in the first and the last third after the warm-up."""
    kept = [s for s in samples if s.t >= warmup_s] or samples
    if len(kept) < 4:
        return []
    third = len(kept) // 3
    out = []
    for label, part in (("first third", kept[: third + 1]), ("last third", kept[-third - 1 :])):
        span = part[-1].t - part[0].t
        if span <= 0:
            continue
        runs = (part[-1].runs - part[0].runs) / span
        cpu = (part[-1].cpu_s - part[0].cpu_s) / span * 100
        lo, hi = part[0].runs, part[-1].runs
        late = sorted(lateness_ms(log_lines[lo:hi]))
        p50 = late[len(late) // 2] if late else float("nan")
        p99 = late[min(len(late) - 1, int(len(late) * 0.99))] if late else float("nan")
        out.append(
            f"{label:<12} {runs:6.2f} runs/s  serve CPU {cpu:5.1f}%  "
            f"lateness p50 {p50:7.1f} ms  p99 {p99:8.1f} ms  ({len(late)} runs)"
        )
    return out


HEADER = (
    f"{'t s':>6} {'fds':>5} {'thr':>4} {'RSS MB':>7} {'CPU s':>7} {'child':>5} {'zomb':>4} "
    f"{'stray':>5} {'tmp':>4} {'jobs':>5} {'runs':>7}"
)


def row(s: Sample) -> str:
    return (
        f"{s.t:6.0f} {s.fds:5d} {s.threads:4d} {s.rss_mb:7.1f} {s.cpu_s:7.1f} {s.children:5d} "
        f"{s.zombies:4d} {s.strays:5d} {s.tmp_files:4d} {s.jobs:5d} {s.runs:7d}"
    )


# ----------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=300.0, help="seconds (default 300)")
    parser.add_argument("--jobs", type=int, default=300, help="standing jobs (default 300)")
    parser.add_argument("--sample", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--churn", type=float, default=2.0, help="seconds between job edits")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--smoke", action="store_true", help="about 30 s, 100 jobs")
    parser.add_argument("--keep", action="store_true", help="keep the temporary store")
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args()
    if args.smoke:
        args.duration, args.jobs, args.sample = 30.0, 100, 2.0
    rng = random.Random(args.seed)
    folder = Path(tempfile.mkdtemp(prefix="lambdacron-soak-", dir="/tmp"))
    root, stage = folder / "jobs", folder / "stage"
    root.mkdir()
    stage.mkdir()
    notices = folder / "notices.txt"
    for key, document in workload(args.jobs, notices):
        place(stage, root / key, document)
    churn = Churn(root, stage, target=30, rng=rng)
    for _ in range(churn.target):
        churn.step()

    marker = f"LAMBDACRON_SOAK={folder.name}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMBDACRON_")}
    env["LAMBDACRON_SOAK"] = folder.name  # inherited by every run, to find strays by
    command = [sys.executable, "-m", "lambdacron", "serve", "--store", str(root)]
    command += ["--workers", str(args.workers)]
    out_log, err_log = folder / "serve.out", folder / "serve.err"
    print(f"soak: {' '.join(command[1:])}; {args.jobs} jobs, {args.duration:g} s, in {folder}")
    samples: list[Sample] = []
    with open(out_log, "wb") as out, open(err_log, "wb") as err:
        serve = subprocess.Popen(command, stdout=out, stderr=err, env=env)
        start = time.monotonic()
        stop_churn = threading.Event()

        def churning() -> None:
            while not stop_churn.wait(args.churn):
                churn.step()

        churner = threading.Thread(target=churning, daemon=True)
        churner.start()
        print(HEADER)
        stopped = 0.0
        try:
            next_at = start
            while time.monotonic() - start < args.duration and serve.poll() is None:
                next_at += args.sample
                time.sleep(max(0.0, next_at - time.monotonic()))
                taken = sample(serve.pid, root, marker.encode(), start, err_log)
                if taken is not None:
                    samples.append(taken)
                    print(row(taken), flush=True)
        finally:
            stop_churn.set()
            churner.join()
            begin = time.monotonic()
            serve.send_signal(signal.SIGTERM)
            try:
                code = serve.wait(timeout=120)
            except subprocess.TimeoutExpired:
                serve.kill()
                code = serve.wait()
            stopped = time.monotonic() - begin
    ticks = out_log.read_text(errors="replace").splitlines()
    errors = err_log.read_text(errors="replace")
    lines = errors.splitlines()
    statuses: dict[str, int] = {}
    for line in lines:
        if (m := _RAN.match(line)) is not None:
            statuses[m[1]] = statuses.get(m[1], 0) + 1
    notices_sent = len(notices.read_text().splitlines()) if notices.exists() else 0
    warmup = min(90.0, args.duration / 4)
    print()
    print(f"serve exited {code} {stopped:.1f} s after SIGTERM")
    print(f"runs by status: {dict(sorted(statuses.items()))}; notices received {notices_sent}")
    print(f"churn: {dict(sorted(churn.counts.items()))}")
    print(f"ticks: {len(ticks)}; tracebacks in serve's output: {errors.count('Traceback')}")
    print(f"verdicts after a {warmup:.0f} s warm-up ({len(samples)} samples):")
    for line in verdicts(samples, warmup):
        print("  " + line)
    for line in pace(samples, [ln for ln in lines if " ran " in ln], warmup):
        print("  " + line)
    if args.keep:
        print(f"kept {folder}")
    else:
        shutil.rmtree(folder, ignore_errors=True)
    return 0 if samples else 1


if __name__ == "__main__":
    sys.exit(main())
