"""One bot instance with everything it talks to, on this machine: what `python -m supervisor
local` and `python -m supervisor play` run.

`start_local_stack` starts, in order, and registers each stop on the caller's ExitStack (so
they stop in reverse whatever happens): PostgreSQL (DATABASE_URL when set, else a throwaway
cluster), the Telegram sandbox process, the Kie sandbox process (tasks take a few seconds per
category and a small share fails, see KIE_DURATION_MS_BY_CATEGORY), and one instance (`python
-m supervisor run`) with a complete generated environment (`sandbox.harness.env`) pointing at
both sandboxes; the instance migrates the database itself and is the Kie callbacks' target.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from config import ConfigError, load_settings
from sandbox.harness.cluster import InstanceCluster, ServerProcess
from sandbox.harness.env import BOT_TOKEN, KIE_KEY, make_env
from sandbox.harness.postgres import ThrowawayCluster
from sandbox.kie import KieSandboxClient
from services.catalog import get_catalog

STARTUP_TIMEOUT_S: Final = 60.0
STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
EXIT_FAILED: Final = 1
EXIT_UNAVAILABLE: Final = 69  # EX_UNAVAILABLE: no PostgreSQL
TELEGRAM_ARGS: Final = ("--port", "0", "--token", BOT_TOKEN, "--per-chat-rate", "0",
                        "--global-rate", "0", "--log-level", "WARNING")
KIE_ARGS: Final = ("--port", "0", "--key", KIE_KEY, "--log-level", "WARNING")
# How long a Kie task of each catalog category takes: long enough to watch the status
# message, short enough to try many models in a minute.
KIE_DURATION_MS_BY_CATEGORY: Final[Mapping[str, int]] = {
    "image": 3_000, "upscale": 4_000, "audio": 5_000, "video": 8_000}
KIE_FAIL_RATE: Final = 0.05  # the share of Kie tasks that end in `fail`, as real ones sometimes do
KIE_FAIL_MSG: Final = "internal error, please try again later"

Say = Callable[[str], None]


@dataclass(frozen=True)
class LocalStack:
    """Where the running parts answer."""

    database_url: str
    telegram_url: str
    kie_url: str
    bot: InstanceCluster


def run_session(name: str, session: Callable[[LocalStack], Coroutine[Any, Any, int]], *,
                kie_fail_rate: float = KIE_FAIL_RATE, **env: str) -> int:
    """Start the stack, run `session` on one event loop, stop everything; return its code."""
    logs_dir = Path(tempfile.mkdtemp(prefix=f"kiebot-{name}-"))
    say(f"kiebot {name} run; logs in {logs_dir}")
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(say, f"stopped; logs kept in {logs_dir}")
        try:
            stack = start_local_stack(cleanup, logs_dir, say, kie_fail_rate=kie_fail_rate,
                                      **env)
            return asyncio.run(session(stack))
        except KeyboardInterrupt:
            say("interrupted")
            return 0
        except (RuntimeError, LookupError, subprocess.CalledProcessError) as exc:
            print(f"{name}: {exc}; logs in {logs_dir}", file=sys.stderr)
            return EXIT_UNAVAILABLE if isinstance(exc, LookupError) else EXIT_FAILED
        finally:
            for sig in STOP_SIGNALS:  # a second Ctrl-C must not cut the cleanup short
                signal.signal(sig, signal.SIG_IGN)
            say("stopping the bot, the sandboxes and PostgreSQL ...")
    return EXIT_FAILED  # unreachable: the with block always returns


def say(line: str) -> None:
    """Print a line of the session at once (stdout may be a pipe)."""
    print(line, flush=True)


def start_local_stack(cleanup: contextlib.ExitStack, logs_dir: Path, say: Say, *,
                      kie_fail_rate: float = KIE_FAIL_RATE, **env: str) -> LocalStack:
    """Start PostgreSQL, both sandboxes and one bot instance (extra `env` overrides)."""
    database_url = start_database(cleanup, say)
    telegram_url = start_telegram(cleanup, logs_dir, say)
    kie_url = start_kie(cleanup, logs_dir, say, fail_rate=kie_fail_rate)
    bot = start_bot(cleanup, logs_dir, say, database_url=database_url,
                    telegram_url=telegram_url, kie_url=kie_url, **env)
    return LocalStack(database_url, telegram_url, kie_url, bot)


def start_database(cleanup: contextlib.ExitStack, say: Say) -> str:
    """Return DATABASE_URL when set, else start a throwaway cluster and return its URL.

    Raises LookupError when there is no PostgreSQL to start.
    """
    if os.environ.get("DATABASE_URL"):
        say("using the database in DATABASE_URL")
        return os.environ["DATABASE_URL"]
    say("starting a throwaway PostgreSQL ...")
    try:
        pg = ThrowawayCluster()
    except RuntimeError as exc:
        raise LookupError(str(exc)) from exc
    cleanup.callback(pg.destroy)
    pg.init().start()
    return pg.url


def start_telegram(cleanup: contextlib.ExitStack, logs_dir: Path, say: Say) -> str:
    """Start the Telegram sandbox process; return its base URL."""
    say("starting the Telegram sandbox ...")
    server = ServerProcess("sandbox.telegram", TELEGRAM_ARGS, logs_dir / "sandbox.log")
    cleanup.callback(server.stop)
    return server.start()


def start_kie(cleanup: contextlib.ExitStack, logs_dir: Path, say: Say, *,
              fail_rate: float = KIE_FAIL_RATE) -> str:
    """Start the Kie sandbox process with realistic task times and failures; return its URL."""
    say("starting the Kie sandbox ...")
    server = kie_process(logs_dir)
    cleanup.callback(server.stop)
    url = server.start()
    # Sync start-up code, before the caller's event loop exists.
    asyncio.run(apply_kie_profile(url, fail_rate=fail_rate))
    return url


def kie_process(logs_dir: Path) -> ServerProcess:
    """Return the Kie sandbox process (not started), logging to logs_dir/kie.log."""
    return ServerProcess("sandbox.kie", KIE_ARGS, logs_dir / "kie.log")


def kie_profile(fail_rate: float = KIE_FAIL_RATE) -> list[dict[str, Any]]:
    """Return the Kie sandbox's fault rules: a duration per model by its category, one fail
    rate for every task (none when 0)."""
    durations = {model.kie_model: KIE_DURATION_MS_BY_CATEGORY[model.category]
                 for model in get_catalog().models}
    rules: list[dict[str, Any]] = [{"kind": "task", "model": name, "duration_ms": duration}
                                   for name, duration in sorted(durations.items())]
    if fail_rate > 0:
        rules.append({"kind": "task", "model": "*", "fail_rate": fail_rate,
                      "fail_code": "500", "fail_msg": KIE_FAIL_MSG})
    return rules


async def apply_kie_profile(kie_url: str, *, fail_rate: float = KIE_FAIL_RATE) -> None:
    """Install `kie_profile(fail_rate)` in the Kie sandbox at kie_url."""
    async with KieSandboxClient(kie_url) as control:
        await control.add_faults(kie_profile(fail_rate))


def start_bot(cleanup: contextlib.ExitStack, logs_dir: Path, say: Say, *, database_url: str,
              telegram_url: str, kie_url: str, **overrides: str) -> InstanceCluster:
    """Start one instance talking to both sandboxes; return once it leads."""
    bot = InstanceCluster(1, command=["-m", "supervisor", "run"], env={}, logs_dir=logs_dir,
                          name="local")
    # Kie's callbacks come to the instance itself: its own URL is the public base URL.
    bot.env = make_env(database_url, TELEGRAM_API_BASE=telegram_url, KIE_BASE_URL=kie_url,
                       KIE_UPLOAD_BASE_URL=kie_url, WEBHOOK_BASE_URL=bot.urls[0],
                       SHUTDOWN_GRACE="5", LEADER_STOP_GRACE="2", **overrides)
    try:
        load_settings(bot.env)
    except ConfigError as exc:
        raise RuntimeError(f"the generated environment is invalid: {exc}") from exc
    say("starting the bot (python -m supervisor run) ...")
    cleanup.callback(bot.stop)
    bot.start()
    bot.wait_leader(STARTUP_TIMEOUT_S)
    return bot
