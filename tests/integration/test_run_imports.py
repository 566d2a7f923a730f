"""The production `run` path never imports the sandbox (the image leaves sandbox/ out)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Final

import aiohttp

from sandbox.telegram import SandboxClient, TelegramSandbox
from tests.helpers import eventually, make_env
from tests.pg import free_port

ROOT: Final = Path(__file__).resolve().parents[2]
LEAD_TIMEOUT_S: Final = 60.0
EXIT_TIMEOUT_S: Final = 30.0
# `python -m supervisor run` as a script, reporting at exit every sandbox module it loaded.
RUN_AND_REPORT: Final = """
import atexit, sys
atexit.register(lambda: print("sandbox modules:", sorted(
    m for m in sys.modules if m.split(".")[0] == "sandbox"), flush=True))
from supervisor.cli import main
sys.exit(main(["run"]))
"""


async def test_running_an_instance_as_leader_loads_no_sandbox_module(
        database_url: str, sandbox: TelegramSandbox, control: SandboxClient) -> None:
    port = free_port()
    env = make_env(database_url, PORT=str(port), TELEGRAM_API_BASE=sandbox.base_url,
                   SHUTDOWN_GRACE="5") | {"PATH": os.environ.get("PATH", "")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", RUN_AND_REPORT, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    try:
        async with aiohttp.ClientSession() as http:

            async def leads() -> bool:
                try:
                    async with http.get(f"http://127.0.0.1:{port}/health") as answer:
                        return bool((await answer.json()).get("role") == "leader")
                except aiohttp.ClientError:
                    return False

            await eventually(leads, timeout_s=LEAD_TIMEOUT_S, what="the instance to lead")

        async def polled() -> bool:  # the leader's services (the poller among them) run
            return int((await control.stats())["calls"].get("getUpdates", 0)) >= 1

        await eventually(polled, timeout_s=LEAD_TIMEOUT_S, what="the leader to poll")
        process.send_signal(signal.SIGTERM)
        stdout, _ = await asyncio.wait_for(process.communicate(), EXIT_TIMEOUT_S)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0
    assert stdout.decode().strip() == "sandbox modules: []"
