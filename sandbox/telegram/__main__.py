"""Run the Telegram sandbox standalone: `python -m sandbox.telegram --token <t> ...`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any, Final

import orjson

from sandbox.telegram.config import SandboxConfig
from sandbox.telegram.errors import mask_token
from sandbox.telegram.server import DEFAULT_FIRST_NAME, DEFAULT_USERNAME, TelegramSandbox

DEFAULT_PORT: Final[int] = 8081
TOKENS_ENV: Final[str] = "TELEGRAM_SANDBOX_TOKENS"
STANDARD_RECORD_KEYS: Final[frozenset[str]] = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__
) | {"message", "asctime", "taskName"}

log = logging.getLogger("sandbox.telegram")


class JsonFormatter(logging.Formatter):
    """Format each record as one JSON object per line, masking bot tokens."""

    def __init__(self, tokens: Sequence[str]) -> None:
        """Remember the tokens that must never appear in output."""
        super().__init__()
        self._secrets = [(token, mask_token(token)) for token in tokens]

    def format(self, record: logging.LogRecord) -> str:
        """Serialize the record with its `extra` fields."""
        payload: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in STANDARD_RECORD_KEYS and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        line = orjson.dumps(payload, default=str).decode()
        for token, masked in self._secrets:
            line = line.replace(token, masked)
        return line


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse command-line options."""
    defaults = SandboxConfig()
    parser = argparse.ArgumentParser(
        prog="python -m sandbox.telegram", description="Local Telegram Bot API sandbox."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument(
        "--token",
        action="append",
        default=[],
        help=f"accepted bot token (repeatable); also read from ${TOKENS_ENV} (comma-separated)",
    )
    parser.add_argument("--username", default=DEFAULT_USERNAME)
    parser.add_argument("--first-name", default=DEFAULT_FIRST_NAME)
    parser.add_argument("--first-update-id", type=int, default=1)
    parser.add_argument("--per-chat-rate", type=float, default=defaults.per_chat_rate_per_s)
    parser.add_argument("--per-chat-burst", type=float, default=defaults.per_chat_burst)
    parser.add_argument("--group-rate", type=float, default=defaults.group_rate_per_s)
    parser.add_argument("--group-burst", type=float, default=defaults.group_burst)
    parser.add_argument("--global-rate", type=float, default=defaults.global_rate_per_s)
    parser.add_argument("--global-burst", type=float, default=defaults.global_burst)
    parser.add_argument("--webhook-timeout", type=float, default=defaults.webhook_timeout_s)
    parser.add_argument(
        "--webhook-retry-initial", type=float, default=defaults.webhook_retry_initial_s
    )
    parser.add_argument("--webhook-retry-max", type=float, default=defaults.webhook_retry_max_s)
    parser.add_argument("--auto-create-chats", action="store_true")
    parser.add_argument("--allow-non-loopback-webhooks", action="store_true")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    env_tokens = [t.strip() for t in os.environ.get(TOKENS_ENV, "").split(",") if t.strip()]
    args.token = [*args.token, *env_tokens]
    if not args.token:
        parser.error(f"give at least one --token (or set ${TOKENS_ENV})")
    return args


def build_config(args: argparse.Namespace) -> SandboxConfig:
    """Translate options into a SandboxConfig."""
    return SandboxConfig(
        per_chat_rate_per_s=args.per_chat_rate,
        per_chat_burst=args.per_chat_burst,
        group_rate_per_s=args.group_rate,
        group_burst=args.group_burst,
        global_rate_per_s=args.global_rate,
        global_burst=args.global_burst,
        webhook_timeout_s=args.webhook_timeout,
        webhook_retry_initial_s=args.webhook_retry_initial,
        webhook_retry_max_s=args.webhook_retry_max,
        auto_create_chats=args.auto_create_chats,
        allow_non_loopback_webhooks=args.allow_non_loopback_webhooks,
    )


async def serve(args: argparse.Namespace) -> None:
    """Start the sandbox, print its base URL as one JSON line and run until SIGINT/SIGTERM."""
    sandbox = TelegramSandbox(
        args.token,
        username=args.username,
        first_name=args.first_name,
        config=build_config(args),
        first_update_id=args.first_update_id,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    base_url = await sandbox.start(args.host, args.port)
    started = {
        "event": "started",
        "base_url": base_url,
        "bots": [{"id": bot.bot_id, "username": bot.username} for bot in sandbox.bots],
    }
    sys.stdout.write(orjson.dumps(started).decode() + "\n")
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        await sandbox.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI."""
    args = parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(args.token))
    logging.basicConfig(level=args.log_level.upper(), handlers=[handler], force=True)
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    with contextlib.suppress(ImportError):
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
