"""Run the Kie sandbox standalone: `python -m sandbox.kie --port 0 --key <k> ...`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Final

from sandbox.common.cli import run, serve
from sandbox.kie.config import KieSandboxConfig
from sandbox.kie.server import KieSandbox

DEFAULT_PORT: Final[int] = 8082
KEYS_ENV: Final[str] = "KIE_SANDBOX_KEYS"
HMAC_ENV: Final[str] = "KIE_SANDBOX_HMAC_KEY"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse command-line options."""
    defaults = KieSandboxConfig()
    parser = argparse.ArgumentParser(
        prog="python -m sandbox.kie", description="Local Kie.ai sandbox."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument(
        "--key",
        action="append",
        default=[],
        help=f"accepted API key (repeatable); also read from ${KEYS_ENV} (comma-separated)",
    )
    parser.add_argument("--http-status-errors", action="store_true")
    parser.add_argument("--no-rate-limit", action="store_true")
    parser.add_argument("--task-duration", type=float, default=defaults.task_duration_s)
    parser.add_argument("--credits", type=float, default=defaults.initial_credits)
    parser.add_argument(
        "--callback-retry-delay", type=float, default=defaults.callback_retry_delay_s
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    env_keys = [k.strip() for k in os.environ.get(KEYS_ENV, "").split(",") if k.strip()]
    args.key = [*args.key, *env_keys]
    if not args.key:
        parser.error(f"give at least one --key (or set ${KEYS_ENV})")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI."""
    args = parse_args(argv)
    hmac_key = os.environ.get(HMAC_ENV) or None
    config = KieSandboxConfig(
        http_status_errors=args.http_status_errors,
        rate_limit_enabled=not args.no_rate_limit,
        task_duration_s=args.task_duration,
        initial_credits=args.credits,
        callback_retry_delay_s=args.callback_retry_delay,
        webhook_hmac_key=hmac_key,
    )
    secrets = [*args.key, *([hmac_key] if hmac_key else [])]

    async def main_coroutine() -> None:
        sandbox = KieSandbox(args.key, config=config)
        await serve(sandbox, args.host, args.port, {})

    return run(main_coroutine, name="kie-sandbox", level=args.log_level, secrets=secrets)


if __name__ == "__main__":
    sys.exit(main())
