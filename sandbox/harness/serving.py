"""Serve an aiohttp app as a helper process: announce its URL, run until SIGTERM or SIGINT.

The line printed on start (`{"event": "started", "base_url": ...}`) is what
`sandbox.harness.cluster.ServerProcess` waits for.
"""

from __future__ import annotations

import asyncio
import signal

import orjson
from aiohttp import web


async def serve_until_signalled(app: web.Application, host: str, port: int) -> None:
    """Serve app on host:port (0 = any free port), print the started line, stop on a signal."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    bound = runner.addresses[0][1]
    print(orjson.dumps({"event": "started", "base_url": f"http://{host}:{bound}"}).decode(),
          flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
