"""The machinery the workloads share: server processes, the load generator, polling, profiling.

Everything here talks to 127.0.0.1 only, and every loop is bounded by a deadline.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
LUA = BENCH_DIR / "lua"


def log(message: str) -> None:
    """Progress goes to stderr; stdout carries only the JSON results."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# -- server processes ------------------------------------------------------------------------


def die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the harness dies, however it dies (Linux),
    so an interrupted or timed-out run leaves no server behind."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@dataclass
class Process:
    """A child HTTP server on loopback: `roost serve`, or the ceiling app."""

    argv: list[str]
    port: int
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    ready_path: str = "/"
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 30.0) -> None:
        env = {**os.environ, **self.env}
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(self.argv, env=env, stdout=out,
                                            stderr=subprocess.STDOUT, cwd=REPO,
                                            preexec_fn=die_with_parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.argv[:4]} exited:\n{self.log()}")
            try:
                if httpx.get(self.url + self.ready_path, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.argv[:4]} did not start:\n{self.log()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def cpu_seconds(self) -> float | None:
        """User+system CPU the process has used so far (Linux /proc), for CPU-per-request."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, AssertionError):
            return None
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks


def roost_server(data_dir: Path, synchronous: str, src: Path | None = None,
                 settings: dict[str, str] | None = None) -> Process:
    """`roost serve` on ``data_dir``, exactly as an operator starts it (one process, uvicorn
    on the event loop of ROOST_EVENT_LOOP, with httptools). With ``src``, the ``roost``
    package is imported from that folder instead (before/after comparisons in one run);
    ``settings`` are more ROOST_* variables (the production backend's database and Redis)."""
    port = free_port()
    env = {"ROOST_SQLITE_SYNCHRONOUS": synchronous, "ROOST_LOG_LEVEL": "warning",
           **(settings or {}), "ROOST_PUBLIC_URL": f"http://127.0.0.1:{port}"}
    if src is not None:
        env["PYTHONPATH"] = str(src)
    return Process([sys.executable, "-m", "roost", "--data-dir", str(data_dir), "serve",
                    "--host", "127.0.0.1", "--port", str(port)],
                   port, data_dir.parent / f"roost-{port}.log", env,
                   ready_path="/api/v1/instance")


def ceiling_server(work_dir: Path, synchronous: str, loop: str | None = None) -> Process:
    """The ceiling app (bench/ceiling_app.py) under the same uvicorn settings as `roost serve`,
    on the event loop it runs on (ROOST_EVENT_LOOP, asyncio unless set) unless ``loop``."""
    loop = loop or os.environ.get("ROOST_EVENT_LOOP", "asyncio")
    port = free_port()
    return Process([sys.executable, "-m", "bench.ceiling_app", "--port", str(port),
                    "--db", str(work_dir / f"bare-{port}.db"), "--synchronous", synchronous,
                    "--loop", loop],
                   port, work_dir / f"ceiling-{port}.log", ready_path="/json")


def roost_cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "roost", "--data-dir", str(data_dir), *args],
                          capture_output=True, text=True, timeout=300, cwd=REPO)


# -- the load generator ----------------------------------------------------------------------


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


@dataclass
class Load:
    """What to send: ``method path`` with one bearer token per request, taken round-robin
    from ``tokens`` (each token used once unless the run outlasts the list, which is
    reported as ``wrapped``). ``{n}`` in ``body`` becomes a unique number."""

    url: str
    method: str = "GET"
    path: str = "/"
    tokens: Sequence[str] = ()
    body: str = ""
    connections: int = 32
    seconds: float = 5.0


def run_load(load: Load, work_dir: Path, generator: str, threads: int = 2) -> dict[str, Any]:
    """Run ``load`` with wrk (or the asyncio+httpx fallback) in a separate process; returns
    {requests, duration_s, rps, errors, latency_ms: {p50, p90, p99, ...}, wrapped}."""
    token_file = work_dir / f"tokens-{time.monotonic_ns()}.txt"
    token_file.write_text("\n".join(load.tokens or ["-"]) + "\n")
    seconds = max(1, round(load.seconds))
    if generator == "wrk":
        argv = ["wrk", f"-t{threads}", f"-c{load.connections}", f"-d{seconds}s",
                "--timeout", "30s", "-s", str(LUA / "bench.lua"), load.url + load.path,
                str(token_file), str(threads), load.method, load.path, load.body]
    else:
        argv = [sys.executable, "-m", "bench.loadgen", "--url", load.url + load.path,
                "--method", load.method, "--tokens", str(token_file), "--body", load.body,
                "--connections", str(load.connections), "--seconds", str(seconds)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120,
                          cwd=REPO)
    token_file.unlink(missing_ok=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"load generator failed ({done.returncode}):\n{done.stdout}\n"
                           f"{done.stderr}")
    raw = json.loads(lines[-1])
    duration = raw["duration_us"] / 1e6
    lat = {k: round(v / 1000, 2) for k, v in raw["latency_us"].items()}
    errors = raw["errors"]
    return {
        "requests": raw["requests"],
        "duration_s": round(duration, 2),
        "rps": round(raw["requests"] / duration, 1) if duration else 0.0,
        "ok_rps": round((raw["requests"] - errors["status"]) / duration, 1) if duration else 0.0,
        "errors": errors,
        "latency_ms": lat,
        "wrapped": raw.get("wrapped", 0),
    }


# -- watching the database -------------------------------------------------------------------


def read_only(db_path: Path) -> sqlite3.Connection:
    """A read-only connection to a server's database (WAL readers never block the writer)."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30,
                           isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def scalar(conn: sqlite3.Connection, sql: str, *args: Any) -> int:
    row = conn.execute(sql, args).fetchone()
    return int(row[0] or 0) if row else 0


# -- profiling -------------------------------------------------------------------------------


class Profiler:
    """py-spy record on the server's pid for the measured window, when --profile DIR is given:
    collapsed stacks with thread names (``DIR/<workload>.txt``; summarise them with
    ``python -m bench.profile DIR/<workload>.txt``)."""

    def __init__(self, out_dir: Path | None, *, gil_only: bool = False) -> None:
        self.out_dir = out_dir
        self.gil_only = gil_only  # py-spy --gil: only the thread holding the GIL (Python's CPU)
        self.children: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, pids: dict[str, int], seconds: float) -> None:
        """Record every process of ``pids`` (role -> pid): the server into ``<name>.txt``,
        the others (production workers) into ``<name>-<role>.txt``."""
        if self.out_dir is None:
            return
        spy = py_spy()
        if spy is None:
            raise RuntimeError("--profile needs py-spy (pip install py-spy)")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for role, pid in pids.items():
            out = self.out_dir / (f"{name}.txt" if role == "server" else f"{name}-{role}.txt")
            self.children.append(subprocess.Popen(
                [spy, "record", "--pid", str(pid), "--rate", "100", "--duration",
                 str(max(1, round(seconds))), "--format", "raw", "--threads", "--nonblocking",
                 *(["--gil"] if self.gil_only else []), "--output", str(out)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def wait(self) -> None:
        for child in self.children:
            try:
                child.wait(60)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self.children.clear()


def py_spy() -> str | None:
    found = shutil.which("py-spy")
    local = Path(sys.executable).parent / "py-spy"
    return found or (str(local) if local.exists() else None)


def thread_times(pid: int) -> dict[int, tuple[float, float]]:
    """For each thread of ``pid``: (seconds on a CPU, seconds runnable but waiting for one),
    from /proc/<pid>/task/<tid>/schedstat. The second shows CPU starvation: by the other
    processes on the machine and by the server's own threads."""
    out: dict[int, tuple[float, float]] = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            on_cpu, waiting, _ = (task / "schedstat").read_text().split()
        except (OSError, ValueError):
            continue
        out[int(task.name)] = (int(on_cpu) / 1e9, int(waiting) / 1e9)
    return out


def thread_names(pid: int) -> dict[int, str]:
    """Python thread names by OS thread id, from `py-spy dump` (empty without py-spy)."""
    spy = py_spy()
    if spy is None:
        return {}
    try:
        dump = subprocess.run([spy, "dump", "--pid", str(pid)], capture_output=True,
                              text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    names = {}
    for match in re.finditer(r'^Thread (\d+) \(([^)]*)\): "(.*)"', dump, re.MULTILINE):
        names[int(match.group(1))] = match.group(3)
    return names


def thread_report(pid: int, before: dict[int, tuple[float, float]],
                  after: dict[int, tuple[float, float]], elapsed: float) -> dict[str, Any]:
    """CPU and run-queue wait per thread group, in percent of one core over ``elapsed``."""
    names = thread_names(pid)
    groups: dict[str, list[float]] = {}
    for tid, (cpu, wait) in after.items():
        cpu0, wait0 = before.get(tid, (0.0, 0.0))
        name = "MainThread (event loop)" if tid == pid else names.get(tid, "other")
        group = groups.setdefault(name, [0.0, 0.0, 0])
        group[0] += cpu - cpu0
        group[1] += wait - wait0
        group[2] += 1
    return {name: {"cpu_percent": round(100 * cpu / elapsed, 1),
                   "runqueue_wait_percent": round(100 * wait / elapsed, 1),
                   "threads": int(n)}
            for name, (cpu, wait, n) in sorted(groups.items(), key=lambda g: -g[1][0])
            if cpu > 0.001 * elapsed or wait > 0.001 * elapsed}


def process_cpu_seconds(pid: int) -> float | None:
    """User+system CPU seconds of any process so far (Linux /proc), None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pids_named(*names: str) -> list[int]:
    """Processes whose command name is one of ``names`` (``postgres``, ``redis-server``)."""
    out = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() in names:
                out.append(int(comm.parent.name))
        except OSError:
            continue
    return out


def cpu_of(pids: list[int]) -> dict[int, float]:
    """CPU seconds so far of each process of ``pids`` still running."""
    out = {}
    for pid in pids:
        cpu = process_cpu_seconds(pid)
        if cpu is not None:
            out[pid] = cpu
    return out


def temp_root(base: str | None) -> Path:
    return Path(tempfile.mkdtemp(prefix="roost-bench-", dir=base))
