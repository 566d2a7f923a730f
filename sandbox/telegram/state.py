"""In-memory state of one sandboxed bot: updates, chats, messages, files, outbox, counters."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from sandbox.common.waiters import Waiters
from sandbox.telegram.config import SandboxConfig
from sandbox.telegram.errors import bad_request
from sandbox.telegram.faults import FaultTable
from sandbox.telegram.invoices import PaymentBook
from sandbox.telegram.ratelimit import RateLimiter

ALL_UPDATE_TYPES: Final[tuple[str, ...]] = (
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "business_connection",
    "business_message",
    "edited_business_message",
    "deleted_business_messages",
    "message_reaction",
    "message_reaction_count",
    "inline_query",
    "chosen_inline_result",
    "callback_query",
    "shipping_query",
    "pre_checkout_query",
    "purchased_paid_media",
    "poll",
    "poll_answer",
    "my_chat_member",
    "chat_member",
    "chat_join_request",
    "chat_boost",
    "removed_chat_boost",
)
NOT_DELIVERED_BY_DEFAULT: Final[frozenset[str]] = frozenset(
    {"chat_member", "message_reaction", "message_reaction_count"}
)
POLL_WAKE_DATA: Final[str] = "data"
POLL_WAKE_CONFLICT: Final[str] = "conflict"
POLL_WAKE_WEBHOOK: Final[str] = "webhook"
POLL_WAKE_STOP: Final[str] = "stop"
MAX_PENDING_CALLBACKS: Final[int] = 100_000
FILE_ID_PREFIX_BY_KIND: Final[dict[str, str]] = {
    "photo": "AgACAgIAAxkBAAI",
    "document": "BQACAgIAAxkBAAI",
    "audio": "CQACAgIAAxkBAAI",
    "video": "BAACAgIAAxkBAAI",
    "voice": "AwACAgIAAxkBAAI",
    "animation": "CgACAgIAAxkBAAI",
}
FILE_FOLDER_BY_KIND: Final[dict[str, str]] = {
    "photo": "photos",
    "document": "documents",
    "audio": "music",
    "video": "videos",
    "voice": "voice",
    "animation": "animations",
}


def now_s() -> int:
    """Return the current Unix time in whole seconds, like Telegram's `date` fields."""
    return int(time.time())


@dataclass(slots=True)
class StoredUpdate:
    """Hold one pending update, already serialized once for both delivery modes."""

    update_id: int
    chat_key: int
    kind: str
    body: bytes


class UpdateStore:
    """Keep pending updates: one ordered queue for polling, per-chat queues for webhooks."""

    def __init__(self) -> None:
        """Start empty in polling mode."""
        self.polling: deque[StoredUpdate] = deque()
        self.by_chat: dict[int, deque[StoredUpdate]] = {}
        self.webhook_mode = False
        self.count = 0

    def add(self, update: StoredUpdate) -> None:
        """Append a new update in the current mode's layout."""
        if self.webhook_mode:
            queue = self.by_chat.get(update.chat_key)
            if queue is None:
                queue = self.by_chat[update.chat_key] = deque()
            queue.append(update)
        else:
            self.polling.append(update)
        self.count += 1

    def to_webhook_mode(self) -> list[int]:
        """Move polling updates into per-chat queues; return chats that have updates."""
        if not self.webhook_mode:
            self.webhook_mode = True
            polling, self.polling = self.polling, deque()
            self.count = 0
            for update in polling:
                self.add(update)
        return [key for key, queue in self.by_chat.items() if queue]

    def to_polling_mode(self) -> None:
        """Merge per-chat queues back into one queue ordered by update_id."""
        if not self.webhook_mode:
            return
        merged = sorted(
            (update for queue in self.by_chat.values() for update in queue),
            key=lambda update: update.update_id,
        )
        self.by_chat.clear()
        self.polling = deque(merged)
        self.webhook_mode = False

    def confirm_below(self, offset: int) -> int:
        """Forget polling updates with update_id < offset; return how many were forgotten."""
        forgotten = 0
        polling = self.polling
        while polling and polling[0].update_id < offset:
            polling.popleft()
            forgotten += 1
        self.count -= forgotten
        return forgotten

    def keep_last(self, keep: int) -> int:
        """Forget all but the last `keep` polling updates (negative getUpdates offset)."""
        forgotten = 0
        while len(self.polling) > keep:
            self.polling.popleft()
            forgotten += 1
        self.count -= forgotten
        return forgotten

    def first(self, limit: int) -> list[StoredUpdate]:
        """Return up to `limit` oldest polling updates without removing them."""
        polling = self.polling
        if len(polling) <= limit:
            return list(polling)
        return [polling[index] for index in range(limit)]

    def chat_head(self, chat_key: int) -> StoredUpdate | None:
        """Return the oldest pending update of one chat (webhook mode)."""
        queue = self.by_chat.get(chat_key)
        return queue[0] if queue else None

    def pop_chat_head(self, chat_key: int, update: StoredUpdate) -> bool:
        """Remove `update` if it is still the head of its chat queue; tell if more remain."""
        queue = self.by_chat.get(chat_key)
        if queue and queue[0] is update:
            queue.popleft()
            self.count -= 1
        if queue:
            return True
        self.by_chat.pop(chat_key, None)
        return False

    def clear(self) -> int:
        """Drop every pending update; return how many were dropped."""
        dropped = self.count
        self.polling.clear()
        self.by_chat.clear()
        self.count = 0
        return dropped


@dataclass(slots=True)
class FileRecord:
    """Describe one stored file; `data` is None for files sent by URL."""

    file_id: str
    file_unique_id: str
    file_path: str
    kind: str
    mime_type: str | None = None
    file_size: int | None = None
    data: bytes | None = None
    url: str | None = None
    file_name: str | None = None
    width: int | None = None
    height: int | None = None
    duration: int | None = None

    def to_file(self) -> dict[str, Any]:
        """Return the Bot API `File` object."""
        result: dict[str, Any] = {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_path": self.file_path,
        }
        if self.file_size is not None:
            result["file_size"] = self.file_size
        return result

    def reference(self) -> dict[str, Any]:
        """Return a compact description for the outbox (type, file_id, url, name, size)."""
        return {
            "type": self.kind,
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "url": self.url,
            "file_name": self.file_name,
            "mime_type": self.mime_type,
            "file_size": self.file_size,
            "uploaded": self.data is not None,
        }


class FileStore:
    """Index files by file_id and by download path."""

    def __init__(self) -> None:
        """Start empty."""
        self.by_id: dict[str, FileRecord] = {}
        self.by_path: dict[str, FileRecord] = {}
        self._counter = 0

    def add(
        self,
        kind: str,
        extension: str,
        *,
        data: bytes | None = None,
        url: str | None = None,
        file_name: str | None = None,
        mime_type: str | None = None,
        width: int | None = None,
        height: int | None = None,
        duration: int | None = None,
    ) -> FileRecord:
        """Store a new file and return its record with fresh identifiers."""
        self._counter += 1
        prefix = FILE_ID_PREFIX_BY_KIND.get(kind, "BQACAgIAAxkBAAI")
        folder = FILE_FOLDER_BY_KIND.get(kind, "documents")
        record = FileRecord(
            file_id=f"{prefix}{self._counter:06d}{secrets.token_urlsafe(18)}",
            file_unique_id=f"AQAD{self._counter:06d}{secrets.token_urlsafe(6)}",
            file_path=f"{folder}/file_{self._counter}.{extension}",
            kind=kind,
            mime_type=mime_type,
            file_size=len(data) if data is not None else None,
            data=data,
            url=url,
            file_name=file_name,
            width=width,
            height=height,
            duration=duration,
        )
        self.by_id[record.file_id] = record
        self.by_path[record.file_path] = record
        return record

    def clear(self) -> None:
        """Forget every file."""
        self.by_id.clear()
        self.by_path.clear()


@dataclass(slots=True)
class StoredMessage:
    """Hold one message of a chat in Bot API shape."""

    message_id: int
    from_bot: bool
    obj: dict[str, Any]
    kind: str


@dataclass(slots=True)
class ChatState:
    """Hold one chat: its Chat object, message id counter, messages and the bot's log."""

    id: int
    obj: dict[str, Any]
    user: dict[str, Any] | None = None
    next_message_id: int = 1
    messages: dict[int, StoredMessage] = field(default_factory=dict)
    log: list[dict[str, Any]] = field(default_factory=list)
    log_total: int = 0
    blocked: bool = False
    last_chat_action: str | None = None
    chat_actions: int = 0

    def new_message_id(self) -> int:
        """Allocate the next message id of this chat."""
        message_id = self.next_message_id
        self.next_message_id += 1
        return message_id

    def store(self, message: StoredMessage, max_messages: int) -> None:
        """Keep a message, forgetting the oldest ones beyond `max_messages`."""
        messages = self.messages
        messages[message.message_id] = message
        while len(messages) > max_messages:
            del messages[next(iter(messages))]

    def last_bot_message(self) -> StoredMessage | None:
        """Return the newest message sent by the bot in this chat."""
        for message in reversed(self.messages.values()):
            if message.from_bot:
                return message
        return None


@dataclass(slots=True)
class CallbackRecord:
    """Remember an injected callback query until the bot answers it."""

    chat_id: int
    user_id: int
    message_id: int | None
    data: str | None


class Outbox:
    """Keep the global ordered log of bot actions with 1-based sequence numbers."""

    def __init__(self, config: SandboxConfig) -> None:
        """Start empty."""
        self._config = config
        self.items: list[dict[str, Any]] = []
        self.first_seq = 1
        self.last_seq = 0

    def append(self, entry: dict[str, Any]) -> int:
        """Assign the next sequence number to `entry` and keep it; return the number."""
        self.last_seq += 1
        entry["seq"] = self.last_seq
        self.items.append(entry)
        cap = self._config.max_outbox_items
        if len(self.items) > cap + max(cap // 8, 1):
            drop = len(self.items) - cap
            del self.items[:drop]
            self.first_seq += drop
        return self.last_seq

    def after(self, after_seq: int, limit: int, method: str | None = None) -> list[dict[str, Any]]:
        """Return up to `limit` entries with seq > after_seq, optionally of one method."""
        start = max(after_seq + 1, self.first_seq) - self.first_seq
        if method is None:
            return self.items[start : start + limit]
        wanted = method.lower()
        found: list[dict[str, Any]] = []
        for entry in self.items[start:]:
            if entry["method"].lower() == wanted:
                found.append(entry)
                if len(found) >= limit:
                    break
        return found

    def clear(self) -> None:
        """Forget entries and restart sequence numbers at 1."""
        self.items.clear()
        self.first_seq = 1
        self.last_seq = 0


@dataclass(slots=True)
class Stats:
    """Count what happened since start or the last reset."""

    injected: int = 0
    filtered: int = 0
    confirmed: int = 0
    dropped: int = 0
    webhook_ok: int = 0
    webhook_failed: int = 0
    calls: Counter[str] = field(default_factory=Counter)
    errors: Counter[int] = field(default_factory=Counter)


@dataclass(slots=True)
class WebhookSettings:
    """Hold the active webhook configuration."""

    url: str
    secret_token: str | None
    max_connections: int


class DeliveryScheduler(Protocol):
    """Accept chats that have updates ready for webhook delivery."""

    def schedule(self, chat_key: int) -> None:
        """Queue `chat_key` for delivery unless it is already queued or in flight."""

    async def stop(self) -> None:
        """Cancel deliveries and release resources."""


class BotState:
    """Hold everything the sandbox knows about one bot token."""

    def __init__(
        self,
        token: str,
        username: str,
        first_name: str,
        config: SandboxConfig,
        first_update_id: int = 1,
    ) -> None:
        """Create empty state for the bot whose id is the token's numeric prefix."""
        self.token = token
        self.bot_id = int(token.split(":", 1)[0])
        self.username = username
        self.first_name = first_name
        self.config = config
        self.user_obj: dict[str, Any] = {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": first_name,
            "username": username,
        }
        self.limiter = RateLimiter(config)
        self.faults = FaultTable()
        self.updates = UpdateStore()
        self.next_update_id = first_update_id
        self.allowed_updates: frozenset[str] | None = None
        self.chats: dict[int, ChatState] = {}
        self.files = FileStore()
        self.callbacks: dict[str, CallbackRecord] = {}
        self.callback_counter = 0
        self.outbox = Outbox(config)
        self.stats = Stats()
        self.waiters = Waiters()
        self.poll: asyncio.Future[str] | None = None
        self.webhook: WebhookSettings | None = None
        self.dispatcher: DeliveryScheduler | None = None
        self.webhook_lock = asyncio.Lock()
        self.webhook_last_error_date: int | None = None
        self.webhook_last_error_message: str | None = None
        self.commands: dict[str, list[dict[str, Any]]] = {}
        self.payments = PaymentBook()

    def allocate_update_id(self) -> int:
        """Return the next update id (monotonic for the life of the process)."""
        update_id = self.next_update_id
        self.next_update_id += 1
        return update_id

    def set_allowed_updates(self, value: Any) -> None:
        """Persist an `allowed_updates` list; an empty list restores the default set."""
        if value is None:
            return
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise bad_request("can't parse allowed updates")
        self.allowed_updates = frozenset(value) if value else None

    def allowed_updates_list(self) -> list[str]:
        """Return the effective allowed update types."""
        if self.allowed_updates is None:
            return [kind for kind in ALL_UPDATE_TYPES if kind not in NOT_DELIVERED_BY_DEFAULT]
        return sorted(self.allowed_updates)

    def is_allowed(self, kind: str) -> bool:
        """Tell whether an update type passes the current allowed_updates filter."""
        if self.allowed_updates is None:
            return kind not in NOT_DELIVERED_BY_DEFAULT
        return kind in self.allowed_updates

    def push_updates(self, updates: Iterable[StoredUpdate]) -> None:
        """Queue new updates and wake the long poll or the webhook dispatcher."""
        store = self.updates
        dispatcher = self.dispatcher
        added = False
        for update in updates:
            store.add(update)
            added = True
            if dispatcher is not None:
                dispatcher.schedule(update.chat_key)
        if added:
            self.wake_poll(POLL_WAKE_DATA)
            self.notify()

    def wake_poll(self, reason: str) -> None:
        """Resolve a pending getUpdates long poll with `reason`."""
        poll = self.poll
        if poll is not None and not poll.done():
            poll.set_result(reason)

    def confirmed(self, count: int) -> None:
        """Count updates confirmed by getUpdates offset or webhook 2xx."""
        if count:
            self.stats.confirmed += count
            self.notify()

    def notify(self) -> None:
        """Let waiters re-check their conditions."""
        if self.waiters:
            self.waiters.notify()

    def record(self, chat: ChatState, entry: dict[str, Any]) -> int:
        """Append a bot action to the outbox and the chat log; return its seq."""
        seq = self.outbox.append(entry)
        log = chat.log
        log.append(entry)
        chat.log_total += 1
        cap = self.config.max_chat_log_items
        if len(log) > cap + max(cap // 8, 1):
            del log[: len(log) - cap]
        self.notify()
        return seq

    def new_callback_id(self) -> str:
        """Return a fresh callback query id (a decimal string like Telegram's)."""
        self.callback_counter += 1
        if len(self.callbacks) >= MAX_PENDING_CALLBACKS:
            del self.callbacks[next(iter(self.callbacks))]
        return f"{self.bot_id % 100_000:05d}{self.callback_counter:012d}"

    def counters(self) -> dict[str, int]:
        """Return the numeric counters used by /_sandbox/wait and /_sandbox/stats."""
        stats = self.stats
        return {
            "injected": stats.injected,
            "filtered": stats.filtered,
            "confirmed": stats.confirmed,
            "dropped": stats.dropped,
            "pending": self.updates.count,
            "outbox": self.outbox.last_seq,
            "webhook_ok": stats.webhook_ok,
            "webhook_failed": stats.webhook_failed,
            "status_429": stats.errors[429],
            "status_409": stats.errors[409],
            "calls_total": sum(stats.calls.values()),
            "chats": len(self.chats),
        }

    def stats_dict(self) -> dict[str, Any]:
        """Return counters plus per-method calls, errors by status and webhook state."""
        result: dict[str, Any] = {"bot_id": self.bot_id, "username": self.username}
        result.update(self.counters())
        result["calls"] = dict(self.stats.calls)
        result["errors"] = {str(code): count for code, count in self.stats.errors.items()}
        result["webhook"] = {
            "url": self.webhook.url if self.webhook else None,
            "last_error_date": self.webhook_last_error_date,
            "last_error_message": self.webhook_last_error_message,
        }
        result["allowed_updates"] = self.allowed_updates_list()
        return result

    def clear(self) -> None:
        """Forget recorded state (update ids keep increasing, outbox seq restarts at 1)."""
        self.updates.clear()
        self.chats.clear()
        self.files.clear()
        self.callbacks.clear()
        self.outbox.clear()
        self.stats = Stats()
        self.faults.clear()
        self.limiter.reconfigure()
        self.webhook_last_error_date = None
        self.webhook_last_error_message = None
        self.commands.clear()
        self.payments.clear()
        self.notify()
