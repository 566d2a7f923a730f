"""Shared pieces of the benchmarks: a throwaway database, the sandbox, instances, percentiles.

Every helper that starts something registers its cleanup on a `contextlib.ExitStack`, so a
benchmark that fails (or gets SIGTERM, see `exit_on_sigterm`) still stops its processes and
drops its database on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import psycopg

from sandbox.harness.cluster import ROOT, InstanceCluster, ServerProcess, get_json, wait_until
from sandbox.harness.databases import Server
from sandbox.harness.env import BOT_TOKEN, make_env
from supervisor import migrations

# Set explicitly so the load generator knows the exact header value (no derivation).
WEBHOOK_SECRET = "bench-webhook-secret-0123456789"
# Chats the load spreads over (the issue measures ingest and pipeline with 1,000).
DEFAULT_CHATS = 1_000
INSTANCE_COMMAND = ("-m", "supervisor", "run")
LEADER_TIMEOUT_S = 60.0
WEBHOOK_SET_TIMEOUT_S = 30.0
EXIT_SIGTERM = 128 + signal.SIGTERM
SOURCE_FILES = ("services/telegram/webhook.py", "services/telegram/inbox.py",
                "services/telegram/dispatcher.py", "services/telegram/poller.py")


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so `finally` blocks and ExitStacks clean up."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(EXIT_SIGTERM)

    signal.signal(signal.SIGTERM, handler)


def percentile(values: Sequence[float], q: float) -> float:
    """Return the q-quantile (0..1) by nearest rank (0.0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def latency_ms(latencies_s: Sequence[float]) -> dict[str, float]:
    """Return p50, p99 and max of latencies given in seconds, in milliseconds."""
    ordered = sorted(latencies_s)
    return {"p50_ms": round(percentile(ordered, 0.50) * 1000, 2),
            "p99_ms": round(percentile(ordered, 0.99) * 1000, 2),
            "max_ms": round((ordered[-1] if ordered else 0.0) * 1000, 2)}


def source_fingerprint() -> dict[str, object]:
    """Tie figures to the code: git HEAD, whether tracked files differ from it, and short
    sha256 sums of the ingress and dispatcher sources."""
    found: dict[str, object] = {}
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        found["git_head"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
            check=True).stdout.strip()
        found["git_dirty"] = bool(subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
            capture_output=True, text=True, check=True).stdout.strip())
    for path in SOURCE_FILES:
        if (ROOT / path).exists():
            found[path] = hashlib.sha256((ROOT / path).read_bytes()).hexdigest()[:12]
    return found


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """Return uvloop's loop factory where installed (what `python -m supervisor` runs on),
    else None (asyncio's own loop)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def event_loop_name() -> str:
    """Name the event loop instances run on here."""
    return "uvloop" if event_loop_factory() else "asyncio"


def logs_dir(stack: contextlib.ExitStack, *, keep: bool = False) -> Path:
    """Return a temp dir for process logs: removed on success (unless keep), kept and named
    on stderr on failure."""
    path = Path(tempfile.mkdtemp(prefix="kiebot-bench-"))

    def cleanup(exc_type: type[BaseException] | None, *_: object) -> bool:
        if exc_type is None and not keep:
            shutil.rmtree(path, ignore_errors=True)
        else:
            state = "failed" if exc_type is not None else "done"
            print(f"benchmark {state}; process logs kept in {path}", file=sys.stderr)
        return False

    stack.push(cleanup)
    return path


@dataclass
class BenchDatabase:
    """A migrated throwaway database on the test server, dropped on exit."""

    url: str
    postgres: dict[str, str] = field(default_factory=dict)

    def count(self, sql: str, params: Sequence[object] = ()) -> int:
        """Run one counting query and return its number."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            row = conn.execute(sql.encode(), params).fetchone()
        return int(row[0]) if row and row[0] is not None else 0


# Backends report their statistics at most once a second, and within a second once idle.
STATS_FLUSH_S = 1.5


def database_transactions(database_url: str) -> int:
    """Return committed + rolled back transactions of this database so far (server stats)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(b"SELECT xact_commit + xact_rollback FROM pg_stat_database"
                           b" WHERE datname = current_database()").fetchone()
    return int(row[0]) if row else 0


def bench_database(stack: contextlib.ExitStack) -> BenchDatabase:
    """Find or start PostgreSQL (TEST_DATABASE_URL, else a throwaway cluster), create and
    migrate a database."""
    server = Server().start()
    stack.callback(server.stop)
    url = server.create_database(prefix="kiebot_bench")
    stack.callback(server.drop_database, url)
    asyncio.run(migrations.apply_pending(url))
    with psycopg.connect(url, autocommit=True) as conn:
        settings: dict[str, str] = dict(conn.execute(
            b"SELECT name, setting FROM pg_settings WHERE name IN"
            b" ('server_version', 'fsync', 'synchronous_commit', 'shared_buffers')").fetchall())
    return BenchDatabase(url, {"source": server.source, **settings})


def start_sandbox(stack: contextlib.ExitStack, logs: Path, *,
                  auto_create_chats: bool = False) -> ServerProcess:
    """Start the Telegram sandbox process without rate limits; return its base URL."""
    args = ["--port", "0", "--token", BOT_TOKEN, "--per-chat-rate", "0", "--global-rate", "0",
            "--log-level", "WARNING"]
    if auto_create_chats:
        args.append("--auto-create-chats")
    return start_server(stack, "sandbox.telegram", args, logs / "sandbox.log")


def start_server(stack: contextlib.ExitStack, module: str, args: Sequence[str],
                 log_path: Path) -> ServerProcess:
    """Start a helper server (`python -m module args`) that announces its base_url."""
    process = ServerProcess(module, args, log_path)
    stack.callback(process.stop)
    process.start()
    return process


def env_pair(text: str) -> tuple[str, str]:
    """Parse a KEY=VALUE command-line option."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def instance_env(database_url: str, sandbox_url: str, *, mode: str, webhook_base_url: str,
                 db_maxconn: int, log_level: str,
                 extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return a production-like environment for instances talking to the sandbox."""
    return make_env(database_url, BOT_MODE=mode, TELEGRAM_API_BASE=sandbox_url,
                    WEBHOOK_BASE_URL=webhook_base_url, WEBHOOK_SECRET_TOKEN=WEBHOOK_SECRET,
                    TELEGRAM_BOT_TOKEN=BOT_TOKEN, DB_MAXCONN=str(db_maxconn),
                    LOG_LEVEL=log_level, SHUTDOWN_GRACE="10", **(extra or {}))


def start_instances(stack: contextlib.ExitStack, env: Mapping[str, str], logs: Path, *,
                    n: int, ports: Sequence[int] | None = None) -> InstanceCluster:
    """Start n `python -m supervisor run` processes (optionally on given ports)."""
    cluster = InstanceCluster(n, command=INSTANCE_COMMAND, env=env, logs_dir=logs, name="b")
    for member, port in zip(cluster.members, ports or (), strict=False):
        member.port = port  # the env (WEBHOOK_BASE_URL) was built for this port
    stack.callback(cluster.stop)
    cluster.start()
    return cluster


def wait_leader(cluster: InstanceCluster) -> int:
    """Wait until exactly one instance leads and all answer; return the leader's index."""
    index = cluster.wait_leader(LEADER_TIMEOUT_S)
    cluster.wait_all_answering(LEADER_TIMEOUT_S)
    return index


def wait_webhook_set(sandbox_url: str, url: str) -> None:
    """Wait until the leader's setWebhook pointed the sandbox at url."""

    def is_set() -> bool:
        stats = get_json(sandbox_url + "/_sandbox/stats")
        webhook = stats.get("webhook") if stats else None
        return isinstance(webhook, dict) and webhook.get("url") == url

    if not wait_until(is_set, WEBHOOK_SET_TIMEOUT_S, interval_s=0.05):
        raise RuntimeError(f"the leader did not set the webhook to {url} within"
                           f" {WEBHOOK_SET_TIMEOUT_S} s")


def wait_sandbox_calls(sandbox_url: str, method: str, at_least: int = 1) -> None:
    """Wait until the bot called a Bot API method at least `at_least` times."""

    def called() -> bool:
        stats = get_json(sandbox_url + "/_sandbox/stats")
        calls = stats.get("calls") if stats else None
        return isinstance(calls, dict) and int(calls.get(method, 0)) >= at_least

    if not wait_until(called, LEADER_TIMEOUT_S, interval_s=0.05):
        raise RuntimeError(f"the bot never called {method} within {LEADER_TIMEOUT_S} s")


@contextlib.contextmanager
def bench_stack() -> Iterator[contextlib.ExitStack]:
    """Yield an ExitStack that cleans up on any exit, SIGTERM included."""
    exit_on_sigterm()
    with contextlib.ExitStack() as stack:
        yield stack


CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """Return the CPU seconds (user + system) a process has used, 0.0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # After the command name: state is field 3; utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_S


def machine_busy_s() -> tuple[float, float]:
    """Return (busy, total) CPU seconds of the whole machine since boot, all cores."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user
    return (total - idle) / CLOCK_TICKS_PER_S, total / CLOCK_TICKS_PER_S


def database_backend_pids(database_url: str) -> list[int]:
    """Return the server pids of every session connected to this database (but ours)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(b"SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                            b" AND pid <> pg_backend_pid()").fetchall()
    return [int(row[0]) for row in rows]


class CpuMeter:
    """CPU used per named group of processes over a window, in cores (CPU s / wall s).

    `other` is what the rest of the machine used meanwhile (PostgreSQL's shared background
    processes, and anything else running on the machine).
    """

    def __init__(self, groups: Mapping[str, Callable[[], Sequence[int]]]) -> None:
        self._find = dict(groups)
        self._groups: dict[str, list[int]] = {}
        self._start: dict[str, float] = {}
        self._machine: tuple[float, float] = (0.0, 0.0)
        self._wall = 0.0

    def _sample(self) -> dict[str, float]:
        return {name: sum(process_cpu_s(pid) for pid in pids)
                for name, pids in self._groups.items()}

    def start(self) -> None:
        """Find each group's processes and mark the beginning of the window."""
        self._groups = {name: list(find()) for name, find in self._find.items()}
        self._start = self._sample()
        self._machine = machine_busy_s()
        self._wall = time.monotonic()

    def stop(self) -> dict[str, float]:
        """Return cores used per group since start(), plus `other` and the machine's `busy`."""
        wall = max(time.monotonic() - self._wall, 1e-9)
        end = self._sample()
        used = {name: (end[name] - self._start.get(name, 0.0)) / wall for name in end}
        busy, total = machine_busy_s()
        machine_cores = (busy - self._machine[0]) / wall
        used["other"] = machine_cores - sum(used.values())
        used["machine_busy"] = machine_cores
        used["machine_cores"] = (total - self._machine[1]) / wall
        return {name: round(value, 2) for name, value in used.items()}


PY_SPY_RATE_HZ = 100
PY_SPY_FINISH_TIMEOUT_S = 30.0


class PySpy:
    """Sample one process with py-spy over the measured window (an optional diagnostic).

    The output format follows the path's suffix: .svg flamegraph, .json speedscope, else raw
    (collapsed stacks, one `frame;frame;... count` per line). Sampling starts with the window
    and ends with it (SIGINT, on which py-spy writes the file).
    """

    def __init__(self, stack: contextlib.ExitStack, find_pid: Callable[[], Sequence[int]],
                 path: Path) -> None:
        found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if not Path(found).exists():
            raise RuntimeError("py-spy is not installed (.venv/bin/pip install py-spy)")
        self._binary = found
        self._find_pid = find_pid
        self.path = path
        self._process: subprocess.Popen[bytes] | None = None
        stack.callback(self._kill)

    def start(self) -> None:
        """Start sampling."""
        fmt = {".svg": "flamegraph", ".json": "speedscope"}.get(self.path.suffix, "raw")
        self._process = subprocess.Popen(
            [self._binary, "record", "-p", str(self._find_pid()[0]), "-r", str(PY_SPY_RATE_HZ),
             "-f", fmt, "-o", str(self.path), "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        """Stop sampling; py-spy writes the profile."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)

    def finish(self) -> None:
        """Wait until the profile is written."""
        if self._process is not None:
            self._process.wait(timeout=PY_SPY_FINISH_TIMEOUT_S)

    def _kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()


class Window:
    """What happens at the edges of a measured window: CPU metering, optionally py-spy."""

    def __init__(self, meter: CpuMeter, profiler: PySpy | None = None) -> None:
        self.meter = meter
        self.profiler = profiler

    def start(self) -> None:
        """Open the window."""
        self.meter.start()
        if self.profiler is not None:
            self.profiler.start()

    def stop(self) -> dict[str, float]:
        """Close the window; return the cores used per process group."""
        cpu = self.meter.stop()
        if self.profiler is not None:
            self.profiler.stop()
        return cpu


# Below this many busy cores (all processes) the machine counts as quiet.
QUIET_BUSY_CORES = 0.25
QUIET_SAMPLE_S = 1.0
QUIET_MAX_WAIT_S = 60.0
# CPU used by processes outside the benchmark above this taints a measurement (cores).
NOISE_CORES = 0.15


def wait_quiet(max_wait_s: float = QUIET_MAX_WAIT_S) -> float:
    """Wait (at most max_wait_s) for a second in which the machine is nearly idle, so other
    work on a shared machine does not skew the figures; return the busy cores last seen."""
    deadline = time.monotonic() + max_wait_s
    while True:
        before, _ = machine_busy_s()
        time.sleep(QUIET_SAMPLE_S)
        busy = (machine_busy_s()[0] - before) / QUIET_SAMPLE_S
        if busy < QUIET_BUSY_CORES or time.monotonic() > deadline:
            return busy


def noise_warning(*cpu_cores: Mapping[str, float]) -> str | None:
    """Return a warning if processes outside the benchmark used CPU in a measured window."""
    other = max((cores.get("other", 0.0) for cores in cpu_cores), default=0.0)
    if other <= NOISE_CORES:
        return None
    return f"other processes used up to {other:.2f} cores during a measured window"
