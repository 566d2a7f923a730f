"""Measure webhook ingest: our instance's durable ingress vs aiogram's in-memory handler.

    python bench/ingest.py [--quick] [--concurrency 64] [--duration 10] [--generator wrk|python]

One real instance (`python -m supervisor run`, BOT_MODE=webhook, its own throwaway database,
TELEGRAM_API_BASE = a Telegram sandbox process) takes POST /telegram/webhook from a load
generator on the same machine (wrk when installed, else a plain asyncio HTTP/1.1 client) over 64
keep-alive connections, each request a distinct ~300-byte message update (unique update_id,
1,000 chats), for D seconds after a warm-up. Every update is committed to
PostgreSQL before the 200; the leader's dispatcher handles the stored updates and replies
through the sandbox meanwhile (part of the real load). The same load then goes to aiogram's
`SimpleRequestHandler` (in-memory, answers before handling, a no-op message handler) in its
own process. /health of our instance is polled every 10 ms from a separate process during our
run. Afterwards every acknowledged update must be in `telegram_updates`. Prints one JSON object.

Helper modes (used by the benchmark itself):
    python bench/ingest.py --serve-aiogram --port 0 --api-base URL --secret S
    python bench/ingest.py --poll-health URL --seconds S
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import itertools
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import orjson
import psycopg

from bench import common
from sandbox.harness.cluster import ServerProcess
from sandbox.harness.env import DEPLOYED_DB_MAXCONN
from sandbox.harness.postgres import free_port
from sandbox.harness.serving import serve_until_signalled
from services.telegram.webhook import SECRET_HEADER, WEBHOOK_PATH
from supervisor.election import lock_key

DEFAULT_CONCURRENCY = 64
DEFAULT_DURATION_S = 10.0
QUICK_DURATION_S = 3.0
DEFAULT_WARMUP_S = 3.0
QUICK_WARMUP_S = 1.0
HEALTH_INTERVAL_S = 0.010
HEALTH_TIMEOUT_S = 2.0
# The poller starts before the load and runs past its end; the window is cut out afterwards.
HEALTH_SLACK_S = 1.0
REQUEST_TIMEOUT_S = 30.0
# Realistic ids: 9-10 digit private chat ids; update ids far from anything the sandbox makes.
CHAT_ID_BASE = 6_000_000_000
FIRST_UPDATE_ID = 500_000_000
# Between the warm-up and the measured wrk run; far above what a warm-up can send.
WRK_ID_GAP = 50_000_000
WRK_THREADS = 2
UNIX_DATE = 1_767_225_600
# A private-chat text message as Telegram sends it (~300 bytes); %d fields, in order:
# update_id, message_id, user id, user id, chat id, chat id, update_id.
UPDATE_TEMPLATE = (
    b'{"update_id":%d,"message":{"message_id":%d,"from":{"id":%d,"is_bot":false,'
    b'"first_name":"Bench","username":"bench_user_%d","language_code":"en"},'
    b'"chat":{"id":%d,"first_name":"Bench","username":"bench_user_%d","type":"private"},'
    b'"date":' + str(UNIX_DATE).encode() + b',"text":"load test message %d"}}')

WRK_SCRIPT = """
local first_id, chats, stride = 0, 1000, 1
counter = 0  -- global: done() reads it from each thread with thread:get
local chat_base = %(chat_base)d
local template = [[%(template)s]]
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  first_id = tonumber(args[1]); chats = tonumber(args[2]); stride = tonumber(args[3])
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["%(header)s"] = args[4]
end

function request()
  local uid = first_id + counter * stride + tid
  counter = counter + 1
  local chat = chat_base + uid %% chats
  local mid = math.floor(uid / chats) + 1
  local body = string.format(template, uid, mid, chat, chat, chat, chat, uid)
  return wrk.format(nil, nil, nil, body)
end

function done(summary, latency, requests)
  local sent = 0
  for _, t in ipairs(threads) do sent = sent + t:get("counter") end
  local e = summary.errors
  io.write(string.format(
    '{"requests":%%d,"duration_us":%%d,"status_errors":%%d,"socket_errors":%%d,'
    .. '"p50_us":%%d,"p99_us":%%d,"max_us":%%d,"sent":%%d}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max, sent))
end
"""


def update_body(update_id: int, chats: int) -> bytes:
    """Return a distinct message update for update_id, in one of `chats` private chats."""
    chat = CHAT_ID_BASE + update_id % chats
    return UPDATE_TEMPLATE % (update_id, update_id // chats + 1, chat, chat, chat, chat,
                              update_id)


@dataclass
class LoadRun:
    """One target's results: what was sent and the measured window's latencies."""

    first_update_id: int
    sent: int = 0
    acknowledged: int = 0
    measured_s: float = 0.0
    latencies_s: list[float] = field(default_factory=list)
    errors: int = 0
    window_wall: tuple[float, float] = (0.0, 0.0)
    # Set by the wrk generator, which reports percentiles itself.
    wrk_summary: dict[str, float] | None = None
    # Cores used per process group during the measured window.
    cpu_cores: dict[str, float] = field(default_factory=dict)

    def figures(self) -> dict[str, object]:
        """Return updates/s, latency percentiles (ms) and the error count."""
        if self.wrk_summary is not None:
            done = self.wrk_summary
            return {"updates_per_s": round(done["requests"] / self.measured_s),
                    "p50_ms": round(done["p50_us"] / 1000, 2),
                    "p99_ms": round(done["p99_us"] / 1000, 2),
                    "max_ms": round(done["max_us"] / 1000, 2), "errors": self.errors,
                    "sent": self.sent, "cpu_cores": self.cpu_cores}
        return {"updates_per_s": round(len(self.latencies_s) / self.measured_s),
                **common.latency_ms(self.latencies_s), "errors": self.errors,
                "sent": self.sent, "cpu_cores": self.cpu_cores}


async def python_load(url: str, *, concurrency: int, warmup_s: float, duration_s: float,
                      first_update_id: int, chats: int, window: common.Window) -> LoadRun:
    """POST distinct updates over `concurrency` connections; measure after the warm-up.

    Plain HTTP/1.1 keep-alive over asyncio streams (no client library): the generator shares
    the machine with what it measures, so it should spend as little of it as it can.
    """
    run = LoadRun(first_update_id)
    target = urlsplit(url)
    host, port = target.hostname or "127.0.0.1", target.port or 80
    head = (f"POST {target.path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"{SECRET_HEADER}: {common.WEBHOOK_SECRET}\r\n"
            "Content-Type: application/json\r\nContent-Length: ").encode()
    ids = itertools.count(first_update_id)
    start = time.perf_counter()
    measure_from = start + warmup_s
    end = measure_from + duration_s
    wall_offset = time.time() - time.perf_counter()

    async def post(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   body: bytes) -> int:
        writer.write(b"%s%d\r\n\r\n%s" % (head, len(body), body))
        header = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in header.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await reader.readexactly(length)
        return int(header[9:12])

    async def worker() -> None:
        connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        while (began := time.perf_counter()) < end:
            update_id = next(ids)
            run.sent += 1
            try:
                if connection is None:
                    connection = await asyncio.open_connection(host, port)
                async with asyncio.timeout(REQUEST_TIMEOUT_S):
                    status = await post(*connection, update_body(update_id, chats))
            except (OSError, asyncio.IncompleteReadError, ValueError, TimeoutError):
                status = 0
                if connection is not None:
                    connection[1].close()
                connection = None
            finished = time.perf_counter()
            if status == 200:
                run.acknowledged += 1
            if began >= measure_from:
                if status == 200:
                    run.latencies_s.append(finished - began)
                else:
                    run.errors += 1
        if connection is not None:
            connection[1].close()

    async def edges() -> None:
        await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
        window.start()
        await asyncio.sleep(max(0.0, end - time.perf_counter()))
        run.cpu_cores = window.stop()

    await asyncio.gather(edges(), *(worker() for _ in range(concurrency)))
    run.measured_s = duration_s
    run.window_wall = (measure_from + wall_offset, end + wall_offset)
    return run


def wrk_load(url: str, *, concurrency: int, warmup_s: float, duration_s: float,
             first_update_id: int, chats: int, window: common.Window,
             script_dir: Path) -> LoadRun:
    """Drive the same load with wrk (C, much cheaper than the Python client)."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed (apt-get install -y wrk)")
    script = script_dir / "ingest.lua"
    script.write_text(WRK_SCRIPT % {"chat_base": CHAT_ID_BASE, "header": SECRET_HEADER,
                                    "template": UPDATE_TEMPLATE.decode()})

    def once(first: int, seconds: float) -> dict[str, float]:
        threads = min(WRK_THREADS, concurrency)
        completed = subprocess.run(
            [wrk, "-t", str(threads), "-c", str(concurrency), "-d", f"{seconds:g}s",
             "--timeout", f"{REQUEST_TIMEOUT_S:g}s", "-s", str(script), url, "--",
             str(first), str(chats), str(threads), common.WEBHOOK_SECRET],
            capture_output=True, text=True, check=False)
        if completed.returncode != 0:
            raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stderr[-500:]}")
        line = completed.stdout.strip().splitlines()[-1]
        return dict(orjson.loads(line))

    run = LoadRun(first_update_id)
    warm = once(first_update_id, warmup_s) if warmup_s > 0 else {"sent": 0}
    measured_first = first_update_id + int(warm["sent"]) + WRK_ID_GAP
    began = time.time()
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    window.start()
    done = once(measured_first, duration_s)
    cpu = window.stop()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu_s = (children.ru_utime + children.ru_stime
                 - children_before.ru_utime - children_before.ru_stime)
    run.cpu_cores = cpu | {"generator": round(wrk_cpu_s / (time.time() - began), 2)}
    run.window_wall = (began, began + duration_s)
    run.measured_s = done["duration_us"] / 1e6
    run.errors = int(done["status_errors"] + done["socket_errors"])
    run.acknowledged = int(done["requests"] - done["status_errors"])
    run.wrk_summary = done
    run.first_update_id = measured_first  # stored is checked over the measured run's range
    run.sent = int(done["sent"])
    return run


# ------------------------------------------------------------------ helper process modes


def poll_health(url: str, seconds: float) -> int:
    """GET url every HEALTH_INTERVAL_S on one keep-alive connection; print samples as JSON."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port,
                                      timeout=HEALTH_TIMEOUT_S)
    samples: list[tuple[float, float, int]] = []
    print("ready", flush=True)
    deadline = time.perf_counter() + seconds
    tick = time.perf_counter()
    while tick < deadline:
        began = time.perf_counter()
        wall = time.time()
        try:
            conn.request("GET", parts.path or "/")
            response = conn.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            conn.close()
            status = 0
        samples.append((wall, time.perf_counter() - began, status))
        # A slow answer skips the ticks it overran instead of firing a catch-up burst.
        tick = max(tick + HEALTH_INTERVAL_S, time.perf_counter())
        time.sleep(max(0.0, tick - time.perf_counter()))
    print(orjson.dumps(samples).decode(), flush=True)
    return 0


async def serve_aiogram(port: int, api_base: str, secret: str) -> None:
    """Serve aiogram's SimpleRequestHandler with a no-op message handler until SIGTERM."""
    from aiogram import Bot, Dispatcher, Router
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer
    from aiogram.types import Message
    from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
    from aiohttp import web

    router = Router(name="noop")

    @router.message()
    async def noop(message: Message) -> None:
        """Take every message and do nothing."""

    dispatcher = Dispatcher()
    dispatcher.include_router(router)
    bot = Bot(common.BOT_TOKEN,
              session=AiohttpSession(api=TelegramAPIServer.from_base(api_base)))
    app = web.Application()
    SimpleRequestHandler(dispatcher=dispatcher, bot=bot,
                         secret_token=secret).register(app, path=WEBHOOK_PATH)
    setup_application(app, dispatcher, bot=bot)
    await serve_until_signalled(app, "127.0.0.1", port)


# ------------------------------------------------------------------ the benchmark


@dataclass
class Load:
    """How to load a target."""

    generator: str
    concurrency: int
    warmup_s: float
    duration_s: float
    chats: int
    logs: Path

    def run(self, url: str, first_update_id: int,
            processes: dict[str, Callable[[], Sequence[int]]],
            profiler: common.PySpy | None = None) -> LoadRun:
        """Load url with the chosen generator, metering the CPU of `processes`."""
        if self.generator == "wrk":
            return wrk_load(url, concurrency=self.concurrency, warmup_s=self.warmup_s,
                            duration_s=self.duration_s, first_update_id=first_update_id,
                            chats=self.chats,
                            window=common.Window(common.CpuMeter(processes), profiler),
                            script_dir=self.logs)
        meter = common.CpuMeter({**processes, "generator": lambda: [os.getpid()]})
        with asyncio.Runner(loop_factory=common.event_loop_factory()) as runner:
            return runner.run(python_load(
            url, concurrency=self.concurrency, warmup_s=self.warmup_s,
            duration_s=self.duration_s, first_update_id=first_update_id, chats=self.chats,
                window=common.Window(meter, profiler)))


def health_figures(samples: Sequence[Sequence[float]],
                   window: tuple[float, float]) -> dict[str, object]:
    """Return /health latency percentiles over the samples taken inside the window."""
    inside = [s for s in samples if window[0] <= s[0] < window[1]]
    latencies = [s[1] for s in inside if s[2] == 200]
    figures = common.latency_ms(latencies)
    return {"p50_ms": figures["p50_ms"], "p99_ms": figures["p99_ms"],
            "max_ms": figures["max_ms"], "n": len(latencies),
            "errors": len(inside) - len(latencies)}


def start_health_poller(stack: contextlib.ExitStack, url: str,
                        seconds: float) -> subprocess.Popen[str]:
    """Start the /health poller process and wait until it is about to poll."""
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--poll-health", url,
         "--seconds", f"{seconds:.3f}"], stdout=subprocess.PIPE, text=True,
        start_new_session=True)

    def stop() -> None:
        if process.poll() is None:
            process.kill()
        process.wait()

    stack.callback(stop)
    assert process.stdout is not None
    if process.stdout.readline().strip() != "ready":
        raise RuntimeError("the /health poller did not start")
    return process


def measure_aiogram(load: Load, sandbox_url: str) -> dict[str, object]:
    """Load aiogram's in-memory webhook handler in its own process; return its figures."""
    with contextlib.ExitStack() as own:
        server = common.start_server(
            own, "bench.ingest", ["--serve-aiogram", "--port", "0", "--api-base", sandbox_url,
                                  "--secret", common.WEBHOOK_SECRET],
            load.logs / "aiogram.log")
        common.wait_quiet()
        run = load.run(server.base_url + WEBHOOK_PATH, FIRST_UPDATE_ID,
                       {"server": lambda: _pids(server.process)})
    return run.figures()


def _pids(*processes: subprocess.Popen[bytes] | subprocess.Popen[str] | None) -> list[int]:
    return [process.pid for process in processes if process is not None]


def hold_leadership(stack: contextlib.ExitStack, database_url: str) -> None:
    """Take the election lock ourselves, so the instance stays a follower: no dispatcher."""
    conn = psycopg.connect(database_url, autocommit=True)
    stack.callback(conn.close)
    conn.execute(b"SELECT pg_advisory_lock(%s)", (lock_key(common.BOT_TOKEN),))


def measure_ours(load: Load, sandbox: ServerProcess,
                 db: common.BenchDatabase, args: argparse.Namespace) -> dict[str, object]:
    """Load one real instance's webhook ingress; return its figures and /health's."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    sandbox_url = sandbox.base_url
    env = common.instance_env(db.url, sandbox_url, mode="webhook", webhook_base_url=base_url,
                              db_maxconn=args.db_maxconn, log_level=args.log_level,
                              extra=dict(args.env))
    with contextlib.ExitStack() as own:
        if args.ingress_only:
            hold_leadership(own, db.url)
        cluster = common.start_instances(own, env, load.logs, n=1, ports=[port])
        if args.ingress_only:
            cluster.wait_all_answering(common.LEADER_TIMEOUT_S)
            if cluster.roles()[0] in (None, "leader"):
                raise RuntimeError(f"expected a lone follower, got roles {cluster.roles()}")
        else:
            common.wait_leader(cluster)
            common.wait_webhook_set(sandbox_url, base_url + WEBHOOK_PATH)
        common.wait_quiet()  # also lets the new leader finish its start-up work
        poller = start_health_poller(
            own, base_url + "/health", load.warmup_s + load.duration_s + HEALTH_SLACK_S * 2)
        first = FIRST_UPDATE_ID + 10 * WRK_ID_GAP
        instance = cluster.members[0]
        profiler = (common.PySpy(own, lambda: _pids(instance.process), Path(args.profile))
                    if args.profile else None)
        run = load.run(base_url + WEBHOOK_PATH, first, {
            "instance": lambda: _pids(instance.process),
            "postgres_backends": lambda: common.database_backend_pids(db.url),
            "sandbox": lambda: _pids(sandbox.process), "health_poller": lambda: _pids(poller)},
            profiler)
        if profiler is not None:
            profiler.finish()
        stored = db.count("SELECT count(*) FROM telegram_updates WHERE update_id >= %s",
                          (run.first_update_id,))
        # received_at = now() is the storing transaction's start: one value per commit.
        commits = db.count("SELECT count(DISTINCT received_at) FROM telegram_updates"
                           " WHERE update_id >= %s", (run.first_update_id,))
        handled = db.count("SELECT count(*) FROM telegram_updates WHERE status = 'done'")
        out, _ = poller.communicate(timeout=load.warmup_s + load.duration_s + 30)
        samples = orjson.loads(out.strip().splitlines()[-1])
    # Python generator: stored == sent. wrk also counts requests it built but never finished.
    consistent = run.acknowledged <= stored <= run.sent
    figures = run.figures() | {"acknowledged": run.acknowledged, "stored": stored,
                               "stored_check": "ok" if consistent else "MISMATCH",
                               "commits": commits,
                               "updates_per_commit": round(stored / commits, 1) if commits else 0,
                               "handled_by_dispatcher_by_end": handled}
    return {"ours": figures, "health": health_figures(samples, run.window_wall)}


def run_benchmark(args: argparse.Namespace) -> dict[str, object]:
    """Run both measurements and return the result document."""
    duration_s = args.duration if args.duration is not None else (
        QUICK_DURATION_S if args.quick else DEFAULT_DURATION_S)
    warmup_s = args.warmup if args.warmup is not None else (
        QUICK_WARMUP_S if args.quick else DEFAULT_WARMUP_S)
    generator = args.generator or ("wrk" if shutil.which("wrk") else "python")
    started = time.monotonic()
    with common.bench_stack() as stack:
        logs = common.logs_dir(stack, keep=args.keep_logs)
        load = Load(generator, args.concurrency, warmup_s, duration_s, args.chats, logs)
        db = common.bench_database(stack)
        # Auto-created chats: the dispatcher's replies go to chats the sandbox never saw.
        sandbox = common.start_sandbox(stack, logs, auto_create_chats=True)
        aiogram = measure_aiogram(load, sandbox.base_url)
        ours = measure_ours(load, sandbox, db, args)
    ratio = (ours["ours"]["updates_per_s"] / aiogram["updates_per_s"]  # type: ignore[index]
             if aiogram["updates_per_s"] else None)
    return {**ours, "aiogram_in_memory": aiogram,
            "ratio_ours_to_aiogram": round(ratio, 2) if ratio is not None else None,
            "noise_warning": common.noise_warning(
                ours["ours"]["cpu_cores"], aiogram["cpu_cores"]),  # type: ignore[index,arg-type]
            "config": {"generator": generator, "concurrency": args.concurrency,
                       "warmup_s": warmup_s, "duration_s": duration_s, "chats": args.chats,
                       "body_bytes": len(update_body(FIRST_UPDATE_ID, args.chats)),
                       "instances": 1, "dispatcher": not args.ingress_only,
                       "event_loop": {"instance": common.event_loop_name(),
                                      "aiogram_server": common.event_loop_name(),
                                      "generator": (common.event_loop_name()
                                                    if generator == "python" else "wrk")},
                       "db_maxconn": args.db_maxconn,
                       "log_level": args.log_level, "extra_env": dict(args.env),
                       "cores": os.cpu_count(),
                       "postgres": db.postgres, "sources": common.source_fingerprint(),
                       "elapsed_s": round(time.monotonic() - started, 1)}}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_DURATION_S:g} s runs after a {QUICK_WARMUP_S:g} s warm-up")
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY,
                        help="concurrent connections")
    parser.add_argument("--duration", type=float, help="measured seconds per target")
    parser.add_argument("--warmup", type=float, help="warm-up seconds per target")
    parser.add_argument("--chats", type=int, default=common.DEFAULT_CHATS)
    parser.add_argument("--generator", choices=("wrk", "python"),
                        help="load generator (default: wrk when installed, else python)")
    parser.add_argument("--db-maxconn", type=int, default=DEPLOYED_DB_MAXCONN,
                        help="instance pool size (default: as deployed)")
    parser.add_argument("--log-level", default="INFO", help="instance LOG_LEVEL")
    parser.add_argument("--keep-logs", action="store_true",
                        help="keep the processes' log files (path on stderr)")
    parser.add_argument("--env", type=common.env_pair, action="append", default=[],
                        metavar="KEY=VALUE", help="extra instance environment (repeatable)")
    parser.add_argument("--ingress-only", action="store_true",
                        help="diagnostic: hold the election lock so the instance stays a"
                             " follower (ingress without the dispatcher's work)")
    parser.add_argument("--profile", metavar="PATH",
                        help="py-spy our instance over the measured window into PATH"
                             " (.svg flamegraph, .json speedscope, else raw collapsed stacks)")
    parser.add_argument("--serve-aiogram", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--api-base", help=argparse.SUPPRESS)
    parser.add_argument("--secret", help=argparse.SUPPRESS)
    parser.add_argument("--poll-health", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_aiogram:
        # The same event loop as our instance, so the comparison is of the handlers.
        with asyncio.Runner(loop_factory=common.event_loop_factory()) as runner:
            runner.run(serve_aiogram(args.port, args.api_base, args.secret))
        return 0
    if args.poll_health:
        return poll_health(args.poll_health, args.seconds)
    result = run_benchmark(args)
    print(orjson.dumps(result).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
