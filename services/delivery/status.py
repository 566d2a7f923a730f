"""Per-job status messages ("queued", "generating…", progress), edited under a throttle.

A job's status message is posted once and then edited in place as the job moves; its result
is always sent as a NEW message (an edit does not notify the user, a new message does).

Throttle: at most one edit per message every STATUS_EDIT_INTERVAL_S, counted from the post or
the previous edit. A text that arrives sooner waits as the message's *pending* text; texts
arriving meanwhile replace it (only the latest is worth showing) and one timer per message
shows it when the interval is over. A final text (`final=True`) is shown under the same
throttle and then the message is forgotten.

Failures are the user's view only, never the job's: an edit Telegram refuses (message deleted,
user blocked the bot, not modified) forgets or skips it, and a network error leaves the text
pending for the next change. State lives in this process only; a new leader starts with none
and its first edit simply goes out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest, TelegramForbiddenError

logger = logging.getLogger(__name__)

# Telegram answers a burst of edits of one message with 429 floods (retry_after grows with
# the abuse); one edit per 3 s per message stays clear of it and still reads as live progress.
STATUS_EDIT_INTERVAL_S: Final[float] = 3.0
NOT_MODIFIED: Final[str] = "message is not modified"


@dataclass(slots=True)
class _Shown:
    """What one status message shows and what waits to be shown."""

    chat_id: int
    message_id: int
    text: str
    touched_at: float
    pending: str | None = None
    final: bool = False
    timer: asyncio.Task[None] | None = None


class StatusBoard:
    """Post status messages and edit them at most once per interval each."""

    def __init__(self, bot: Bot, *, interval_s: float = STATUS_EDIT_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """Edit through `bot`, no message more often than every interval_s (by `clock`)."""
        self._bot = bot
        self._interval_s = interval_s
        self._clock = clock
        self._shown: dict[tuple[int, int], _Shown] = {}

    @property
    def pending(self) -> int:
        """Return how many messages wait for an edit."""
        return sum(1 for shown in self._shown.values() if shown.pending is not None)

    async def post(self, chat_id: int, text: str) -> int | None:
        """Send a new status message; return its id (None when the user blocked the bot)."""
        try:
            message = await self._bot.send_message(chat_id, text)
        except TelegramForbiddenError:
            return None
        self._shown[(chat_id, message.message_id)] = _Shown(
            chat_id, message.message_id, text, self._clock())
        return message.message_id

    async def show(self, chat_id: int, message_id: int, text: str, *, final: bool = False) -> None:
        """Show text in a status message now if the throttle allows, else as soon as it does."""
        key = (chat_id, message_id)
        shown = self._shown.get(key)
        if shown is None:
            # Posted by an earlier leader (or forgotten): nothing known, so nothing to wait for.
            shown = self._shown[key] = _Shown(chat_id, message_id, "", float("-inf"))
        shown.final = shown.final or final
        if text == shown.text and shown.pending is None:
            self._maybe_forget(shown)
            return
        shown.pending = text
        wait_s = shown.touched_at + self._interval_s - self._clock()
        if wait_s <= 0:
            await self._edit(shown)
        elif shown.timer is None:
            shown.timer = asyncio.create_task(self._edit_later(shown, wait_s),
                                              name=f"status-edit-{chat_id}-{message_id}")

    async def flush(self) -> None:
        """Show every pending text now, throttle or not (drain on shutdown, tests)."""
        for shown in list(self._shown.values()):
            if shown.timer is not None:
                shown.timer.cancel()
                shown.timer = None
            if shown.pending is not None:
                await self._edit(shown)

    async def close(self) -> None:
        """Drop pending texts and their timers."""
        for shown in self._shown.values():
            if shown.timer is not None:
                shown.timer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await shown.timer
        self._shown.clear()

    async def _edit_later(self, shown: _Shown, wait_s: float) -> None:
        """Wait out the throttle, then show the latest pending text."""
        await asyncio.sleep(wait_s)
        shown.timer = None
        await self._edit(shown)

    async def _edit(self, shown: _Shown) -> None:
        """Edit the message to its pending text; Telegram's refusals only forget or skip it."""
        text = shown.pending
        if text is None:
            return
        shown.touched_at = self._clock()
        try:
            await self._bot.edit_message_text(text=text, chat_id=shown.chat_id,
                                              message_id=shown.message_id)
        except TelegramBadRequest as exc:
            if NOT_MODIFIED not in exc.message:
                logger.info("status_edit_refused", extra={"chat_id": shown.chat_id,
                                                          "error": exc.message[:200]})
                self._forget(shown)
                return
        except TelegramForbiddenError:
            self._forget(shown)
            return
        except TelegramAPIError as exc:
            # An outage outlasting the Bot's retries: keep the text pending for the next change.
            logger.warning("status_edit_failed", extra={"chat_id": shown.chat_id,
                                                        "error": str(exc)[:200]})
            return
        shown.text, shown.pending = text, None
        self._maybe_forget(shown)

    def _maybe_forget(self, shown: _Shown) -> None:
        """Forget a message once its final text is shown."""
        if shown.final and shown.pending is None:
            self._forget(shown)

    def _forget(self, shown: _Shown) -> None:
        """Stop tracking a message (its timer, if another task, ends on its own)."""
        if shown.timer is not None and shown.timer is not asyncio.current_task():
            shown.timer.cancel()
        self._shown.pop((shown.chat_id, shown.message_id), None)
