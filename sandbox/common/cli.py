"""Standalone runs of a sandbox: JSON logs, first stdout line with the URL, stop on a signal."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

import orjson

from sandbox.common.server import SandboxServer
from supervisor.logs import setup_logging


async def serve(server: SandboxServer, host: str, port: int, started: dict[str, Any]) -> None:
    """Start `server`, print `started` plus its base URL as one JSON line, run until a signal."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    base_url = await server.start(host, port)
    line = {"event": "started", "base_url": base_url, **started}
    sys.stdout.write(orjson.dumps(line).decode() + "\n")
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        await server.stop()


def run(
    main: Callable[[], Coroutine[Any, Any, None]],
    *,
    name: str,
    level: str,
    secrets: Iterable[str],
) -> int:
    """Log JSON lines to stderr with `secrets` masked, then run `main()` on uvloop if present."""
    setup_logging(level=level.upper(), instance_id=name, secrets=secrets)
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    with contextlib.suppress(ImportError):
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main())
    return 0
