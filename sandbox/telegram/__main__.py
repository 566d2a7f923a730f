"""Run the Telegram sandbox standalone: `python -m sandbox.telegram --token <t> ...`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Final

from sandbox.common.cli import run, serve
from sandbox.telegram.config import SandboxConfig
from sandbox.telegram.server import DEFAULT_FIRST_NAME, DEFAULT_USERNAME, TelegramSandbox

DEFAULT_PORT: Final[int] = 8081
TOKENS_ENV: Final[str] = "TELEGRAM_SANDBOX_TOKENS"


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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; logs mask each token's secret part (`123456789:***`)."""
    args = parse_args(argv)

    async def main_coroutine() -> None:
        sandbox = TelegramSandbox(
            args.token,
            username=args.username,
            first_name=args.first_name,
            config=build_config(args),
            first_update_id=args.first_update_id,
        )
        bots = [{"id": bot.bot_id, "username": bot.username} for bot in sandbox.bots]
        await serve(sandbox, args.host, args.port, {"bots": bots})

    secrets = [token.partition(":")[2] for token in args.token]
    return run(main_coroutine, name="telegram-sandbox", level=args.log_level, secrets=secrets)


if __name__ == "__main__":
    sys.exit(main())
