"""`python -m supervisor local` driven through a pipe, as a person at a terminal would."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Final

import pytest

pytestmark = pytest.mark.chaos  # real processes and signals

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
LINE_TIMEOUT_S: Final = 90.0  # start-up (sandbox, instance, election) comes before `ready`
EXIT_TIMEOUT_S: Final = 40.0


async def _read_until(stream: asyncio.StreamReader, needle: str) -> list[str]:
    """Return the lines read up to and including the first that contains needle."""
    lines: list[str] = []
    while True:
        raw = await asyncio.wait_for(stream.readline(), LINE_TIMEOUT_S)
        if not raw:
            raise AssertionError(f"output ended before {needle!r}: {lines}")
        lines.append(raw.decode())
        if needle in lines[-1]:
            return lines


async def _session(database_url: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "supervisor", "local", cwd=REPO_ROOT,
        env={"PATH": os.environ.get("PATH", ""), "DATABASE_URL": database_url},
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)


async def test_local_session_greets_on_start_and_quits_at_end_of_input(
        database_url: str) -> None:
    session = await _session(database_url)
    assert session.stdin is not None and session.stdout is not None
    try:
        await _read_until(session.stdout, "ready:")
        session.stdin.write(b"/start\n")
        await _read_until(session.stdout, "bot> Hello, You!")
        session.stdin.write(b"/press 1\n")  # the menu's first button: the image models
        await _read_until(session.stdout, "\U0001f5bc Images: ")
        # Plain text at the menu is a prompt (the quick path); an unknown command is not.
        session.stdin.write(b"/press 99\n/menu\n/nonsense\n")
        await _read_until(session.stdout, "(no button 99")
        await _read_until(session.stdout, "bot> I did not understand \u201c/nonsense\u201d")
        session.stdin.close()
        rest = await _read_until(session.stdout, "stopped; logs kept in")
        assert await asyncio.wait_for(session.wait(), EXIT_TIMEOUT_S) == 0, rest
    finally:
        if session.returncode is None:
            session.kill()
            await session.wait()


async def test_local_session_stops_everything_on_ctrl_c(database_url: str) -> None:
    session = await _session(database_url)
    assert session.stdout is not None
    try:
        await _read_until(session.stdout, "ready:")
        session.send_signal(signal.SIGINT)
        await _read_until(session.stdout, "stopping the bot, the sandboxes and PostgreSQL")
        await _read_until(session.stdout, "stopped; logs kept in")
        assert await asyncio.wait_for(session.wait(), EXIT_TIMEOUT_S) == 0
    finally:
        if session.returncode is None:
            session.kill()
            await session.wait()
