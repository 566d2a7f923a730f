"""`python -m supervisor play`: chat with the bot in a browser, nothing to configure.

How it runs
    `run_playground` (sync) starts PostgreSQL, both sandboxes and one instance
    (`sandbox.harness.local_stack`: Kie tasks take a few seconds per category, a few fail),
    stopped in reverse whatever happens. Then one asyncio loop serves the page (`app.py`,
    static/ beside it) on 127.0.0.1, prints its address and opens a browser when there is a
    display. The page shows one private chat with the bot as Telegram would: formatted text,
    inline and reply keyboards, edits in place, photos, video, audio, documents, albums, and
    sends your messages, taps and uploads through the sandbox's control API.
    Ctrl-C (or SIGTERM/SIGHUP) stops the page; the cleanup then stops the bot, the sandboxes
    and PostgreSQL. The same loop watches the bot process and stops when it exits.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import webbrowser
from typing import Final

from aiohttp import web

from sandbox.harness.env import BOT_TOKEN
from sandbox.harness.local_stack import (
    EXIT_FAILED,
    KIE_FAIL_RATE,
    STOP_SIGNALS,
    LocalStack,
    run_session,
    say,
)
from sandbox.harness.playground.app import Person, make_app
from supervisor.aio import wait_event

HOST: Final = "127.0.0.1"  # the page is for this machine only
CHAT_ID: Final = 4242  # the one private chat of the person at the page
FIRST_NAME: Final = "You"
ALIVE_CHECK_S: Final = 1.0  # how often the loop checks that the bot process still runs


def run_playground(args: argparse.Namespace) -> int:
    """Start PostgreSQL, the sandboxes and one bot; serve the chat page until Ctrl-C."""
    person = Person(CHAT_ID, FIRST_NAME, args.language)
    return run_session("play", lambda stack: serve(stack, person, port=args.port,
                                                   browser=not args.no_browser),
                       kie_fail_rate=(KIE_FAIL_RATE if args.kie_fail_rate is None
                                      else args.kie_fail_rate))


def has_display() -> bool:
    """Tell whether a browser window could open here."""
    return sys.platform in ("darwin", "win32") or bool(
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


async def serve(stack: LocalStack, person: Person, *, port: int, browser: bool) -> int:
    """Serve the page until a stop signal or the bot's exit; return the exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(make_app(stack.telegram_url, BOT_TOKEN, person), access_log=None,
                           handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, HOST, port)
        await site.start()
        url = f"http://{HOST}:{runner.addresses[0][1]}/"
        say(f"playground: {url}  (Ctrl-C quits)")
        if browser and has_display():
            await asyncio.to_thread(webbrowser.open, url)
        member = stack.bot.members[0]
        while not await wait_event(stop, ALIVE_CHECK_S):
            if not member.alive():
                say(f"(the bot exited; see {member.log_path})")
                return EXIT_FAILED
        return 0
    finally:
        await runner.cleanup()
