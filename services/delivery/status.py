"""Per-job status messages ("queued", "generating…", progress), edited under a throttle.

A job's status message is posted once and then edited in place as the job moves; its result
is always sent as a NEW message (an edit does not notify the user, a new message does).

Throttle: at most one edit per message every STATUS_EDIT_INTERVAL_S, counted from the post or
the previous edit. A text that arrives sooner waits as the message's *pending* text; texts
arriving meanwhile replace it (only the latest is worth showing) and one timer per message
shows it when the interval is over. A final text (`final=True`) is shown under the same
throttle; after it the message takes no other text (a late "generating" from a loop that
read the job before it finished cannot replace "done"), and finished messages are forgotten
oldest first once MAX_TRACKED_MESSAGES are tracked.

Who calls: `show` awaits an edit the throttle allows (and schedules the rest); `queue` never
waits, the edit goes out from the board's own task: the leader's loops use it, so a status
edit never holds up a submission or a delivery. `note` records an edit made by someone else
(the confirm handler turning its card into the status message), so the interval counts from
it. Each text may carry `on_shown`, awaited with True once Telegram showed it (or it already
showed it) and with False when the message is gone; a text replaced before it was shown is
never reported.

Failures are the user's view only, never the job's: an edit Telegram refuses (message deleted,
user blocked the bot) forgets the message, "not modified" counts as shown, a network error
leaves the text pending for the next change, and an instance that stopped leading drops its
texts (the next leader shows its own). State lives in this process only; a new leader starts
with none and its first edit simply goes out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest, TelegramForbiddenError
from aiogram.types import InlineKeyboardMarkup

from supervisor.election import FencedError

logger = logging.getLogger(__name__)

# Telegram answers a burst of edits of one message with 429 floods (retry_after grows with
# the abuse); one edit per 3 s per message stays clear of it and still reads as live progress.
STATUS_EDIT_INTERVAL_S: Final[float] = 3.0
NOT_MODIFIED: Final[str] = "message is not modified"

# Messages tracked at most (about 200 bytes each); finished ones are dropped first.
MAX_TRACKED_MESSAGES: Final[int] = 50_000
# Told True once a text is on screen, False when its message is gone for good.
OnShown = Callable[[bool], Awaitable[None]]


@dataclass(slots=True)
class _Shown:
    """What one status message shows and what waits to be shown."""

    chat_id: int
    message_id: int
    text: str
    touched_at: float
    pending: str | None = None
    on_shown: OnShown | None = None  # the pending text's
    markup: InlineKeyboardMarkup | None = None  # the pending text's buttons
    final: bool = False
    timer: asyncio.Task[None] | None = None


class StatusBoard:
    """Post status messages and edit them at most once per interval each."""

    def __init__(self, bot: Bot, *, interval_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """Edit through `bot`, no message more often than every interval_s (by `clock`;
        default STATUS_EDIT_INTERVAL_S, read now so tests can shorten it)."""
        self._bot = bot
        self._interval_s = STATUS_EDIT_INTERVAL_S if interval_s is None else interval_s
        self._clock = clock
        self._shown: dict[tuple[int, int], _Shown] = {}
        self._reports: set[asyncio.Task[None]] = set()

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

    def note(self, chat_id: int, message_id: int, text: str) -> None:
        """Record that a message shows text now, edited elsewhere (the interval starts)."""
        shown = self._shown.get((chat_id, message_id))
        if shown is None:
            self._shown[(chat_id, message_id)] = _Shown(chat_id, message_id, text, self._clock())
            self._maybe_trim()
        else:
            shown.text, shown.touched_at = text, self._clock()

    async def show(self, chat_id: int, message_id: int, text: str, *, final: bool = False,
                   on_shown: OnShown | None = None,
                   reply_markup: InlineKeyboardMarkup | None = None) -> None:
        """Show text (with reply_markup's buttons) in a status message now if the throttle
        allows, else as soon as it does."""
        shown = self._take(chat_id, message_id, text, final=final, on_shown=on_shown,
                           markup=reply_markup)
        if shown is None:
            return
        wait_s = shown.touched_at + self._interval_s - self._clock()
        if wait_s <= 0:
            self._cancel_timer(shown)
            await self._edit(shown)
        else:
            self._schedule(shown, wait_s)

    def queue(self, chat_id: int, message_id: int, text: str, *, final: bool = False,
              on_shown: OnShown | None = None,
              reply_markup: InlineKeyboardMarkup | None = None) -> None:
        """Show text in a status message from the board's own task, never waiting here."""
        shown = self._take(chat_id, message_id, text, final=final, on_shown=on_shown,
                           markup=reply_markup)
        if shown is not None:
            self._schedule(shown, shown.touched_at + self._interval_s - self._clock())

    def _take(self, chat_id: int, message_id: int, text: str, *, final: bool,
              on_shown: OnShown | None, markup: InlineKeyboardMarkup | None) -> _Shown | None:
        """Make text the message's pending one; None when there is nothing to edit."""
        key = (chat_id, message_id)
        shown = self._shown.get(key)
        if shown is None:
            # Posted by an earlier leader (or forgotten): nothing known, so nothing to wait for.
            shown = self._shown[key] = _Shown(chat_id, message_id, "", float("-inf"))
            self._maybe_trim()
        if shown.final and not final:
            return None  # a final text was asked for: nothing goes back to "running"
        shown.final = shown.final or final
        if text == shown.text and shown.pending is None:
            if on_shown is not None:
                self._report(shown, on_shown, True)
            return None
        shown.pending, shown.on_shown, shown.markup = text, on_shown, markup
        return shown

    def _schedule(self, shown: _Shown, wait_s: float) -> None:
        """Start the message's timer unless it runs (it shows the latest pending text)."""
        if wait_s <= 0:
            self._cancel_timer(shown)  # one waiting longer than the clock now asks for
        if shown.timer is None:
            shown.timer = asyncio.create_task(
                self._edit_later(shown, max(wait_s, 0.0)),
                name=f"status-edit-{shown.chat_id}-{shown.message_id}")

    async def flush(self) -> None:
        """Show every pending text now, throttle or not (drain on shutdown, tests)."""
        for shown in list(self._shown.values()):
            if shown.timer is not None:
                shown.timer.cancel()
                shown.timer = None
            if shown.pending is not None:
                await self._edit(shown)

    async def close(self) -> None:
        """Drop pending texts and their timers; let running reports finish."""
        for shown in list(self._shown.values()):
            if shown.timer is not None:
                shown.timer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await shown.timer
        self._shown.clear()
        if self._reports:
            await asyncio.wait(list(self._reports))

    @staticmethod
    def _cancel_timer(shown: _Shown) -> None:
        """Cancel a waiting timer (a timer clears itself before it edits, so an edit in
        flight is never cancelled here)."""
        if shown.timer is not None:
            shown.timer.cancel()
            shown.timer = None

    async def _edit_later(self, shown: _Shown, wait_s: float) -> None:
        """Wait out the throttle, then show the latest pending text."""
        await asyncio.sleep(wait_s)
        shown.timer = None
        try:
            await self._edit(shown)
        except Exception:  # a task's top level: an edit must never take anything else down
            logger.exception("status_edit_crashed", extra={"chat_id": shown.chat_id})

    async def _edit(self, shown: _Shown) -> None:
        """Edit the message to its pending text; Telegram's refusals only forget or skip it."""
        text, on_shown = shown.pending, shown.on_shown
        if text is None:
            return
        shown.touched_at = self._clock()
        try:
            await self._bot.edit_message_text(text=text, chat_id=shown.chat_id,
                                              message_id=shown.message_id,
                                              reply_markup=shown.markup)
        except TelegramBadRequest as exc:
            if NOT_MODIFIED not in exc.message:
                logger.info("status_edit_refused", extra={"chat_id": shown.chat_id,
                                                          "error": exc.message[:200]})
                self._gone(shown, on_shown)
                return
        except TelegramForbiddenError:
            self._gone(shown, on_shown)
            return
        except FencedError:
            # No longer the leader: the next one shows its own texts.
            self._forget(shown)
            return
        except TelegramAPIError as exc:
            # An outage outlasting the Bot's retries: keep the text pending for the next change.
            logger.warning("status_edit_failed", extra={"chat_id": shown.chat_id,
                                                        "error": str(exc)[:200]})
            return
        if shown.pending == text:
            shown.pending, shown.on_shown = None, None
        shown.text = text
        if on_shown is not None:
            self._report(shown, on_shown, True)

    def _gone(self, shown: _Shown, on_shown: OnShown | None) -> None:
        """Forget a message Telegram will not edit again, and tell its pending text's owner."""
        self._forget(shown)
        if on_shown is not None:
            self._report(shown, on_shown, False)

    def _report(self, shown: _Shown, on_shown: OnShown, showing: bool) -> None:
        """Tell a text's owner what became of it, from a task of its own (it may write)."""
        task = asyncio.create_task(self._call(on_shown, showing),
                                   name=f"status-shown-{shown.chat_id}-{shown.message_id}")
        self._reports.add(task)
        task.add_done_callback(self._reports.discard)

    @staticmethod
    async def _call(on_shown: OnShown, showing: bool) -> None:
        try:
            await on_shown(showing)
        except FencedError:
            pass  # a deposed leader records nothing; the next one catches up
        except Exception:  # a task's top level: a report must never take anything else down
            logger.exception("status_report_failed")

    def _maybe_trim(self) -> None:
        """Forget the oldest finished messages (then the oldest of all) past the cap."""
        if len(self._shown) <= MAX_TRACKED_MESSAGES:
            return
        idle = [key for key, shown in self._shown.items()
                if shown.pending is None and shown.timer is None]
        finished = [key for key in idle if self._shown[key].final]
        for key in list(dict.fromkeys(finished + idle))[:len(self._shown) - MAX_TRACKED_MESSAGES]:
            self._shown.pop(key, None)

    def _forget(self, shown: _Shown) -> None:
        """Stop tracking a message (its timer, if another task, ends on its own)."""
        if shown.timer is not None and shown.timer is not asyncio.current_task():
            shown.timer.cancel()
        self._shown.pop((shown.chat_id, shown.message_id), None)
