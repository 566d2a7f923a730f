"""`python -m supervisor local`: talk to the bot in this terminal, nothing to configure.

How it runs
    `run_local` (sync) starts PostgreSQL, both sandboxes and one instance
    (`sandbox.harness.local_stack`), stopped in reverse whatever happens (an ExitStack). Then
    one asyncio loop (`Chat.run`) with two tasks:
    - input: every line typed is injected as a message of one private chat; `/press N` taps
      button N of the latest inline keyboard (a callback query); end of input quits;
    - output: long-polls the sandbox for the chat's log and prints each bot action, inline
      keyboards as numbered buttons.
    Ctrl-C (or SIGTERM/SIGHUP) ends the loop; the cleanup then stops the bot, the sandboxes and
    PostgreSQL. Logs stay in the printed directory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TextIO

from sandbox.harness.cluster import InstanceCluster
from sandbox.harness.local_stack import EXIT_FAILED, STOP_SIGNALS, run_session
from sandbox.telegram import SandboxClient, SandboxError, SandboxTimeout
from supervisor.aio import wait_event

CHAT_ID: Final = 4242  # the one private chat of the person at the terminal
FIRST_NAME: Final = "You"
WAIT_CHUNK_S: Final = 25.0  # one long poll of the sandbox's chat log
ALIVE_CHECK_S: Final = 1.0  # how often the loop checks that the bot process still runs
PRESS: Final = re.compile(r"^/press\s+(\d+)\s*$")


def run_local(args: argparse.Namespace) -> int:
    """Start PostgreSQL, the sandboxes and one bot instance; chat on stdin/stdout until Ctrl-C."""
    return run_session("local", lambda stack: Chat(stack.telegram_url, stack.bot,
                                                   language=args.language).run())


@dataclass
class Keyboard:
    """The latest inline keyboard the bot sent, its buttons numbered from 1."""

    message_id: int = 0
    buttons: list[Mapping[str, Any]] = field(default_factory=list)

    def button(self, number: int) -> Mapping[str, Any] | None:
        """Return button `number` (1-based), or None if there is no such button."""
        return self.buttons[number - 1] if 0 < number <= len(self.buttons) else None


def render(entry: Mapping[str, Any], keyboard: Keyboard) -> list[str]:
    """Return the lines that show one bot action; remember its inline keyboard in `keyboard`."""
    method = str(entry.get("method", ""))
    message_id = entry.get("message_id")
    if method == "answerCallbackQuery":
        return [f"bot (notice)> {entry['text']}"] if entry.get("text") else []
    if method == "deleteMessage":
        return [f"(the bot deleted message {message_id})"]
    label = "bot" if method.startswith(("send", "copy", "forward")) else (
        f"bot ({method} #{message_id})")
    body = entry.get("text") or entry.get("caption") or ""
    lines = [f"{label}> {line}" for line in str(body).splitlines() or [""]]
    media = entry.get("media")
    if isinstance(media, Mapping):
        where = media.get("url") or media.get("file_id") or ""
        lines.append(f"{label}> [{media.get('type', 'file')}] {where}")
    markup = entry.get("reply_markup")
    rows = markup.get("inline_keyboard") if isinstance(markup, Mapping) else None
    if rows:
        keyboard.message_id = int(message_id or 0)
        keyboard.buttons = [button for row in rows for button in row]
        number = 0
        for row in rows:
            cells = []
            for button in row:
                number += 1
                cells.append(f"[{number}] {button.get('text', '')}")
            lines.append("     " + "   ".join(cells))
        lines.append("     (/press N taps a button)")
    return lines


class Chat:
    """The terminal session: stdin lines in as user messages, the bot's actions out."""

    def __init__(self, sandbox_url: str, bot: InstanceCluster, *, language: str,
                 out: TextIO | None = None) -> None:
        self._sandbox_url = sandbox_url
        self._bot = bot
        self._language = language
        self._out = out or sys.stdout
        self._keyboard = Keyboard()
        self._stop = asyncio.Event()

    async def run(self) -> int:
        """Chat until end of input, Ctrl-C or the bot's exit; return the exit code."""
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, self._stop.set)
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        self._print("ready: type a message (/start to begin); /press N taps button N;"
                    " Ctrl-C quits")
        try:
            async with SandboxClient(self._sandbox_url, timeout_s=WAIT_CHUNK_S) as control:
                tasks = [asyncio.create_task(self._input(reader, control), name="local-input"),
                         asyncio.create_task(self._output(control), name="local-output"),
                         asyncio.create_task(self._watch_bot(), name="local-watch")]
                for task in tasks:  # whichever ends first (input closed, a failure) ends all
                    task.add_done_callback(lambda _: self._stop.set())
                await self._stop.wait()
                for task in tasks:
                    task.cancel()
                for result in await asyncio.gather(*tasks, return_exceptions=True):
                    if isinstance(result, Exception):
                        self._print(f"(the session failed: {result!r})")
        finally:
            transport.close()
            with contextlib.suppress(OSError, ValueError):
                os.set_blocking(sys.stdin.fileno(), True)  # leave the terminal as we found it
        return 0 if self._bot.members[0].alive() else EXIT_FAILED

    def _print(self, line: str) -> None:
        print(line, file=self._out, flush=True)

    async def _input(self, reader: asyncio.StreamReader, control: SandboxClient) -> None:
        """Send each typed line; end of input stops the session."""
        while line := (await reader.readline()).decode(errors="replace"):
            text = line.strip()
            if text:
                await self._send(control, text)
        self._stop.set()

    async def _send(self, control: SandboxClient, text: str) -> None:
        """Tap a button for `/press N`, else send the text as a user message."""
        try:
            pressed = PRESS.match(text)
            if pressed is None:
                await control.inject_message(CHAT_ID, text, first_name=FIRST_NAME,
                                             language_code=self._language)
                return
            button = self._keyboard.button(int(pressed.group(1)))
            if not self._keyboard.buttons:
                self._print("(no buttons to press: the bot has sent no inline keyboard yet)")
            elif button is None:
                self._print(f"(no button {pressed.group(1)}: the latest keyboard has"
                            f" {len(self._keyboard.buttons)})")
            elif "callback_data" in button:
                await control.inject_callback(CHAT_ID, str(button["callback_data"]),
                                              message_id=self._keyboard.message_id,
                                              first_name=FIRST_NAME,
                                              language_code=self._language)
            else:
                link = button.get("url") or button.get("web_app") or "nothing to tap here"
                self._print(f"(button {pressed.group(1)} is a link: {link})")
        except SandboxError as exc:
            self._print(f"(the sandbox refused it: {exc})")

    async def _output(self, control: SandboxClient) -> None:
        """Print every bot action in the chat, in order, as it happens."""
        seen, last_seq = 0, 0
        while True:
            with contextlib.suppress(SandboxTimeout):
                await control.wait(chat_id=CHAT_ID, chat_at_least=seen + 1,
                                   timeout_s=WAIT_CHUNK_S)
                chat = await control.chat(CHAT_ID, after_seq=last_seq)
                seen = int(chat["total"])
                for entry in chat["messages"]:
                    last_seq = max(last_seq, int(entry["seq"]))
                    for line in render(entry, self._keyboard):
                        self._print(line)

    async def _watch_bot(self) -> None:
        """Stop the session if the bot process exits on its own."""
        member = self._bot.members[0]
        while not await wait_event(self._stop, ALIVE_CHECK_S):
            if not member.alive():
                self._print(f"(the bot exited; see {member.log_path})")
                self._stop.set()

