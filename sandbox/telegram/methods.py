"""Bot API method implementations, registered by case-insensitive method name."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import unquote, urlsplit

from sandbox.telegram.errors import (
    ApiError,
    ApiResult,
    RawResult,
    bad_request,
    conflict,
    forbidden,
    ok_body,
    too_many_requests,
)
from sandbox.telegram.inject import ensure_chat, media_object
from sandbox.telegram.markup import MAX_CAPTION_LEN, MAX_TEXT_LEN, parse_text, utf16_len
from sandbox.telegram.media import (
    DEFAULT_IMAGE_SIDE_PX,
    UrlFetchError,
    UrlTooBig,
    extension_for,
    fetch_url,
    guess_mime,
    image_size,
    is_loopback_host,
    upload_limit_bytes,
    url_host,
    url_limit_bytes,
)
from sandbox.telegram.params import Params, UploadedFile
from sandbox.telegram.state import (
    POLL_WAKE_CONFLICT,
    POLL_WAKE_STOP,
    POLL_WAKE_WEBHOOK,
    BotState,
    ChatState,
    FileRecord,
    StoredMessage,
    WebhookSettings,
    now_s,
)
from sandbox.telegram.webhook import WebhookDispatcher

DEFAULT_UPDATES_LIMIT: Final[int] = 100
MAX_POLL_TIMEOUT_S: Final[float] = 3_600.0
DEFAULT_WEBHOOK_MAX_CONNECTIONS: Final[int] = 40
MAX_WEBHOOK_MAX_CONNECTIONS: Final[int] = 100
MAX_GET_FILE_BYTES: Final[int] = 20 * 1024 * 1024
MAX_CALLBACK_DATA_BYTES: Final[int] = 64
MAX_CALLBACK_ANSWER_LEN: Final[int] = 200
DEFAULT_VIDEO_WIDTH_PX: Final[int] = 640
DEFAULT_VIDEO_HEIGHT_PX: Final[int] = 360
WEBHOOK_ACTIVE: Final[str] = (
    "can't use getUpdates method while webhook is active; use deleteWebhook to delete the "
    "webhook first"
)
TERMINATED_BY_OTHER: Final[str] = (
    "terminated by other getUpdates request; make sure that only one bot instance is running"
)
WRONG_FILE: Final[str] = "wrong file identifier/HTTP URL specified"
URL_UNREACHABLE: Final[str] = "failed to get HTTP URL content"
WRONG_PHOTO_TYPE: Final[str] = "wrong type of the web page content"
# Telegram's answer to a photo upload above 10 MB (an upload above 50 MB gets HTTP 413).
PHOTO_TOO_BIG: Final[str] = "PHOTO_SAVE_FILE_INVALID"
QUERY_INVALID: Final[str] = "query is too old and response timeout expired or query ID is invalid"
NOT_MODIFIED: Final[str] = (
    "message is not modified: specified new message content and reply markup are exactly the "
    "same as a content and reply markup of a message"
)
CHAT_ACTIONS: Final[frozenset[str]] = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
INLINE_BUTTON_ACTIONS: Final[tuple[str, ...]] = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)
MEDIA_KINDS: Final[tuple[str, ...]] = ("photo", "video", "animation", "audio", "document")
EDITABLE_MEDIA_FIELDS: Final[frozenset[str]] = frozenset(
    {*MEDIA_KINDS, "caption", "caption_entities", "reply_markup"}
)
COPIED_FIELDS: Final[frozenset[str]] = frozenset(
    {*MEDIA_KINDS, "text", "entities", "caption", "caption_entities"}
)
MIN_MEDIA_GROUP_ITEMS: Final[int] = 2
MAX_MEDIA_GROUP_ITEMS: Final[int] = 10
BUTTON_URL_SCHEMES: Final[tuple[str, ...]] = ("http://", "https://", "tg://")
SECRET_TOKEN_RE: Final[re.Pattern[str]] = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
BOT_COMMAND_RE: Final[re.Pattern[str]] = re.compile(r"^[a-z0-9_]{1,32}$")
MAX_COMMAND_DESCRIPTION_LEN: Final[int] = 256
MAX_BOT_COMMANDS: Final[int] = 100
KICKED_DESCRIPTIONS: Final[dict[str, str]] = {
    "private": "bot was blocked by the user",
    "group": "bot was kicked from the group chat",
    "supergroup": "bot was kicked from the supergroup chat",
    "channel": "bot was kicked from the channel chat",
}

log = logging.getLogger(__name__)

Handler = Callable[[BotState, Params], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class MethodSpec:
    """Describe one Bot API method: canonical name, handler, whether rate limits apply."""

    name: str
    handler: Handler
    rate_limited: bool = False


METHODS: dict[str, MethodSpec] = {}


def api_method(name: str, *, rate_limited: bool = False) -> Callable[[Handler], Handler]:
    """Register a handler under a case-insensitive Bot API method name."""

    def register(handler: Handler) -> Handler:
        METHODS[name.lower()] = MethodSpec(name, handler, rate_limited)
        return handler

    return register


def find_method(name: str) -> MethodSpec | None:
    """Look a method up by name, ignoring case like Telegram."""
    return METHODS.get(name.lower())


async def call_method(bot: BotState, spec: MethodSpec, params: Params) -> Any:
    """Count the call, apply injected faults and rate limits, then run the handler."""
    bot.stats.calls[spec.name] += 1
    if bot.faults:
        await bot.faults.apply(spec.name.lower(), params.peek_chat_id())
    if spec.rate_limited:
        retry_after_s = bot.limiter.acquire(params.peek_chat_id())
        if retry_after_s:
            raise too_many_requests(retry_after_s)
    return await spec.handler(bot, params)


async def run_method(bot: BotState, spec: MethodSpec, params: Params) -> tuple[int, bytes]:
    """Run a method and return (HTTP status, serialized Bot API response)."""
    try:
        result = await call_method(bot, spec, params)
    except ApiError as exc:
        count_error(bot, exc.code)
        return exc.code, exc.body()
    return 200, ok_body(result)


def count_error(bot: BotState, code: int) -> None:
    """Count an error response by status code."""
    bot.stats.errors[code] += 1
    bot.notify()


async def run_webhook_reply(bot: BotState, params: Params) -> None:
    """Execute a method returned in a webhook response body; results are discarded."""
    name = str(params.values.pop("method", ""))
    spec = find_method(name)
    if spec is None:
        count_error(bot, 404)
        return
    try:
        await run_method(bot, spec, params)
    except Exception:
        log.exception("webhook reply method failed", extra={"bot_id": bot.bot_id, "method": name})


# ---------------------------------------------------------------- helpers


def _target_chat(bot: BotState, p: Params) -> ChatState:
    """Resolve the chat a message is sent to, enforcing chat existence and blocks."""
    chat_id = p.chat_id()
    if chat_id is None:
        raise bad_request("chat_id is empty")
    chat = bot.chats.get(chat_id)
    if chat is None:
        if not bot.config.auto_create_chats:
            raise bad_request("chat not found")
        chat = ensure_chat(bot, chat_id)
    if chat.blocked:
        raise forbidden(KICKED_DESCRIPTIONS.get(chat.obj.get("type", "private"), "bot was kicked"))
    return chat


def _validate_inline_keyboard(rows: Any) -> None:
    """Check an inline keyboard the way Telegram rejects malformed buttons."""
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request(
            'field "inline_keyboard" of the InlineKeyboardMarkup should be an Array of Arrays'
        )
    for row in rows:
        for button in row:
            if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                raise bad_request(
                    'can\'t parse inline keyboard button: Field "text" must be of type String'
                )
            if not any(button.get(key) is not None for key in INLINE_BUTTON_ACTIONS):
                raise bad_request(
                    "can't parse inline keyboard button: Text buttons are unallowed in the "
                    "inline keyboard"
                )
            data = button.get("callback_data")
            if data is not None and (
                not isinstance(data, str) or not 1 <= len(data.encode()) <= MAX_CALLBACK_DATA_BYTES
            ):
                raise bad_request("BUTTON_DATA_INVALID")
            url = button.get("url")
            if url is not None and (
                not isinstance(url, str) or not url.startswith(BUTTON_URL_SCHEMES)
            ):
                raise bad_request(f"inline keyboard button URL '{url}' is invalid: Wrong HTTP URL")


def _reply_markup(p: Params, *, inline_only: bool = False) -> tuple[Any, dict[str, Any] | None]:
    """Return (markup as sent, inline keyboard to attach to the message or None)."""
    markup = p.get_json("reply_markup", "reply keyboard markup")
    if markup is None:
        return None, None
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in markup:
        _validate_inline_keyboard(markup["inline_keyboard"])
        inline = {"inline_keyboard": markup["inline_keyboard"]}
        return markup, inline if markup["inline_keyboard"] else None
    if inline_only:
        raise bad_request("inline keyboard expected")
    if "keyboard" in markup:
        rows = markup["keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise bad_request(
                'field "keyboard" of the ReplyKeyboardMarkup should be an Array of Arrays'
            )
        return markup, None
    if markup.get("remove_keyboard") is True or markup.get("force_reply") is True:
        return markup, None
    raise bad_request("can't parse reply keyboard markup JSON object")


def _reply_target(chat: ChatState, p: Params) -> dict[str, Any] | None:
    """Resolve reply_parameters / reply_to_message_id into the replied message object."""
    allow_without = p.get_bool("allow_sending_without_reply")
    reply_id: Any = None
    parameters = p.get_json("reply_parameters", "reply parameters")
    if isinstance(parameters, dict):
        reply_id = parameters.get("message_id")
        allow_without = bool(parameters.get("allow_sending_without_reply", allow_without))
    else:
        reply_id = p.get_int("reply_to_message_id")
    if reply_id is None:
        return None
    target = chat.messages.get(reply_id) if isinstance(reply_id, int) else None
    if target is None:
        if allow_without:
            return None
        raise bad_request("message to be replied not found")
    replied = dict(target.obj)
    replied.pop("reply_to_message", None)
    return replied


def _explicit_entities(p: Params, name: str) -> list[dict[str, Any]] | None:
    """Read an explicit entities array (used when parse_mode is not given)."""
    entities = p.get_json(name, "entities")
    if entities is None:
        return None
    if not isinstance(entities, list) or not all(isinstance(e, dict) for e in entities):
        raise bad_request("can't parse entities JSON object")
    return entities


def _parse_caption(p: Params) -> tuple[str | None, list[dict[str, Any]]]:
    """Parse an optional caption with its parse_mode and check its length."""
    return _caption_of(
        p.get_str("caption"), p.get_str("parse_mode"), _explicit_entities(p, "caption_entities")
    )


def _caption_of(
    caption: Any, parse_mode: Any, explicit: list[dict[str, Any]] | None
) -> tuple[str | None, list[dict[str, Any]]]:
    """Parse a caption value into (plain caption, entities), enforcing the length limit."""
    if caption is None or caption == "":
        return None, []
    if not isinstance(caption, str) or (parse_mode is not None and not isinstance(parse_mode, str)):
        raise bad_request("can't parse caption")
    plain, entities = parse_text(caption, parse_mode, explicit)
    if utf16_len(plain) > MAX_CAPTION_LEN:
        raise bad_request("message caption is too long")
    return plain, entities


def _parse_message_text(p: Params) -> tuple[str, str, list[dict[str, Any]]]:
    """Return (raw text, plain text, entities) of a text parameter, validating it."""
    text = p.get_str("text")
    if not text:
        raise bad_request("message text is empty")
    plain, entities = parse_text(text, p.get_str("parse_mode"), _explicit_entities(p, "entities"))
    if not plain.strip():
        raise bad_request("message text is empty")
    if utf16_len(plain) > MAX_TEXT_LEN:
        raise bad_request("message is too long")
    return text, plain, entities


def _store_bot_message(
    bot: BotState,
    chat: ChatState,
    kind: str,
    content: dict[str, Any],
    inline: dict[str, Any] | None,
    reply_to: dict[str, Any] | None,
) -> StoredMessage:
    """Allocate a message id, build the bot's Message object and keep it."""
    message_id = chat.new_message_id()
    obj: dict[str, Any] = {
        "message_id": message_id,
        "from": bot.user_obj,
        "chat": chat.obj,
        "date": now_s(),
    }
    if reply_to is not None:
        obj["reply_to_message"] = reply_to
    obj.update(content)
    if inline is not None:
        obj["reply_markup"] = inline
    message = StoredMessage(message_id, True, obj, kind)
    chat.store(message, bot.config.max_messages_per_chat)
    return message


def _entry(
    method: str,
    chat: ChatState,
    message_id: int | None,
    *,
    text: str | None = None,
    raw_text: str | None = None,
    parse_mode: str | None = None,
    caption: str | None = None,
    reply_markup: Any = None,
    media: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Build an outbox/chat-log entry describing one bot action."""
    entry: dict[str, Any] = {
        "seq": 0,
        "chat_id": chat.id,
        "method": method,
        "message_id": message_id,
        "date": now_s(),
        "sent_at": time.time(),  # exact (Unix s): chaos runs place each send in a leader's term
        "text": text,
        "raw_text": raw_text,
        "parse_mode": parse_mode,
        "caption": caption,
        "reply_markup": reply_markup,
        "media": media,
    }
    entry.update(extra)
    return entry


def _message_to_edit(
    bot: BotState, p: Params, *, deleting: bool = False
) -> tuple[ChatState, StoredMessage]:
    """Find the message addressed by chat_id + message_id for edit/delete methods."""
    missing = "message to delete not found" if deleting else "message to edit not found"
    if p.has("inline_message_id") and not p.has("chat_id"):
        raise bad_request(missing)
    chat_id = p.chat_id()
    if chat_id is None:
        raise bad_request("chat_id is empty")
    chat = bot.chats.get(chat_id)
    if chat is None:
        raise bad_request("chat not found")
    if chat.blocked:
        raise forbidden(KICKED_DESCRIPTIONS.get(chat.obj.get("type", "private"), "bot was kicked"))
    message_id = p.get_int("message_id")
    if message_id is None:
        raise bad_request("message identifier is not specified")
    message = chat.messages.get(message_id)
    if message is None:
        raise bad_request(missing)
    if not message.from_bot and not deleting:
        raise bad_request("message can't be edited")
    return chat, message


def _current_text(obj: dict[str, Any]) -> str | None:
    """Return a message's text or caption."""
    value = obj.get("text", obj.get("caption"))
    return value if isinstance(value, str) else None


# ---------------------------------------------------------------- identity & updates


@api_method("getMe")
async def get_me(bot: BotState, p: Params) -> Any:
    """Return the bot's User object."""
    return {
        **bot.user_obj,
        "can_join_groups": True,
        "can_read_all_group_messages": False,
        "supports_inline_queries": False,
        "can_connect_to_business": False,
        "has_main_web_app": False,
    }


@api_method("getUpdates")
async def get_updates(bot: BotState, p: Params) -> Any:
    """Confirm updates below `offset`, then return pending ones, long polling up to `timeout`."""
    if bot.webhook is not None:
        raise conflict(WEBHOOK_ACTIVE)
    offset = p.get_int("offset")
    limit = p.get_int("limit") or DEFAULT_UPDATES_LIMIT
    limit = min(max(limit, 1), DEFAULT_UPDATES_LIMIT)
    timeout_s = min(max(p.get_float("timeout") or 0.0, 0.0), MAX_POLL_TIMEOUT_S)
    bot.set_allowed_updates(p.get_json("allowed_updates", "allowed updates"))
    bot.wake_poll(POLL_WAKE_CONFLICT)
    store = bot.updates
    if offset is not None:
        forgotten = store.keep_last(-offset) if offset < 0 else store.confirm_below(offset)
        bot.confirmed(forgotten)
    items = store.first(limit)
    if not items and timeout_s > 0:
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        bot.poll = future
        reason = ""
        try:
            async with asyncio.timeout(timeout_s):
                reason = await future
        except TimeoutError:
            reason = ""
        finally:
            if bot.poll is future:
                bot.poll = None
        if reason == POLL_WAKE_CONFLICT:
            raise conflict(TERMINATED_BY_OTHER)
        if reason == POLL_WAKE_WEBHOOK:
            raise conflict(WEBHOOK_ACTIVE)
        items = [] if reason == POLL_WAKE_STOP else store.first(limit)
    return RawResult([update.body for update in items])


def _validate_webhook_url(bot: BotState, url: str) -> None:
    """Accept http(s) URLs; only loopback hosts unless the config allows others."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
    host = parts.hostname
    if not host:
        raise bad_request("bad webhook: Failed to resolve host: Name or service not known")
    if bot.config.allow_non_loopback_webhooks:
        return
    if not is_loopback_host(host):
        raise bad_request(
            "bad webhook: the sandbox delivers only to loopback hosts (127.0.0.0/8, ::1, localhost)"
        )


async def install_webhook(bot: BotState, settings: WebhookSettings) -> None:
    """Replace any running dispatcher with one delivering to `settings`."""
    if bot.dispatcher is not None:
        await bot.dispatcher.stop()
        bot.dispatcher = None
    bot.webhook = settings

    async def on_reply(params: Params) -> None:
        await run_webhook_reply(bot, params)

    dispatcher = WebhookDispatcher(bot, settings, on_reply)
    bot.dispatcher = dispatcher
    dispatcher.start()
    bot.wake_poll(POLL_WAKE_WEBHOOK)


async def remove_webhook(bot: BotState) -> bool:
    """Stop webhook delivery and return to polling mode; tell whether a webhook was set."""
    was_set = bot.webhook is not None
    if bot.dispatcher is not None:
        await bot.dispatcher.stop()
        bot.dispatcher = None
    bot.webhook = None
    bot.updates.to_polling_mode()
    return was_set


def _drop_pending(bot: BotState) -> None:
    """Drop every pending update (drop_pending_updates=True)."""
    bot.stats.dropped += bot.updates.clear()
    bot.notify()


@api_method("setWebhook")
async def set_webhook(bot: BotState, p: Params) -> Any:
    """Set (or with an empty url, remove) the webhook and start pushing updates."""
    url = p.get_str("url") or ""
    drop = p.get_bool("drop_pending_updates")
    async with bot.webhook_lock:
        if not url:
            was_set = await remove_webhook(bot)
            if drop:
                _drop_pending(bot)
            return ApiResult(
                True, "Webhook was deleted" if was_set else "Webhook is already deleted"
            )
        _validate_webhook_url(bot, url)
        secret = p.get_str("secret_token") or None
        if secret is not None and not SECRET_TOKEN_RE.match(secret):
            raise bad_request("bad webhook: secret token contains unallowed characters")
        max_connections = p.get_int("max_connections") or DEFAULT_WEBHOOK_MAX_CONNECTIONS
        max_connections = min(max(max_connections, 1), MAX_WEBHOOK_MAX_CONNECTIONS)
        allowed = p.get_json("allowed_updates", "allowed updates")
        settings = WebhookSettings(url=url, secret_token=secret, max_connections=max_connections)
        same = bot.webhook == settings and allowed is None and not drop
        bot.set_allowed_updates(allowed)
        if same:
            return ApiResult(True, "Webhook is already set")
        if bot.webhook is None or bot.webhook.url != url:
            bot.webhook_last_error_date = None
            bot.webhook_last_error_message = None
        if drop:
            if bot.dispatcher is not None:
                await bot.dispatcher.stop()
                bot.dispatcher = None
            _drop_pending(bot)
        await install_webhook(bot, settings)
        log.info(
            "webhook set",
            extra={"bot_id": bot.bot_id, "url": url, "max_connections": max_connections},
        )
        return ApiResult(True, "Webhook was set")


@api_method("deleteWebhook")
async def delete_webhook(bot: BotState, p: Params) -> Any:
    """Remove the webhook (optionally dropping pending updates)."""
    drop = p.get_bool("drop_pending_updates")
    async with bot.webhook_lock:
        was_set = await remove_webhook(bot)
        if drop:
            _drop_pending(bot)
    if was_set:
        log.info("webhook deleted", extra={"bot_id": bot.bot_id})
    return ApiResult(True, "Webhook was deleted" if was_set else "Webhook is already deleted")


@api_method("getWebhookInfo")
async def get_webhook_info(bot: BotState, p: Params) -> Any:
    """Return WebhookInfo: url, pending count, limits and the last delivery error."""
    info: dict[str, Any] = {
        "url": bot.webhook.url if bot.webhook else "",
        "has_custom_certificate": False,
        "pending_update_count": bot.updates.count,
    }
    if bot.webhook is not None:
        info["max_connections"] = bot.webhook.max_connections
        info["ip_address"] = "127.0.0.1"
        if bot.allowed_updates is not None:
            info["allowed_updates"] = sorted(bot.allowed_updates)
    if bot.webhook_last_error_date is not None:
        info["last_error_date"] = bot.webhook_last_error_date
        info["last_error_message"] = bot.webhook_last_error_message
    return info


# ---------------------------------------------------------------- messages


@api_method("sendMessage", rate_limited=True)
async def send_message(bot: BotState, p: Params) -> Any:
    """Send a text message."""
    chat = _target_chat(bot, p)
    raw_text, plain, entities = _parse_message_text(p)
    raw_markup, inline = _reply_markup(p)
    reply_to = _reply_target(chat, p)
    content: dict[str, Any] = {"text": plain}
    if entities:
        content["entities"] = entities
    message = _store_bot_message(bot, chat, "text", content, inline, reply_to)
    bot.record(
        chat,
        _entry(
            "sendMessage",
            chat,
            message.message_id,
            text=plain,
            raw_text=raw_text,
            parse_mode=p.get_str("parse_mode"),
            reply_markup=raw_markup,
        ),
    )
    return message.obj


@api_method("editMessageText", rate_limited=True)
async def edit_message_text(bot: BotState, p: Params) -> Any:
    """Replace the text (and inline keyboard) of a bot message."""
    chat, message = _message_to_edit(bot, p)
    raw_text, plain, entities = _parse_message_text(p)
    raw_markup, inline = _reply_markup(p, inline_only=True)
    old = message.obj
    if "text" not in old:
        raise bad_request("there is no text in the message to edit")
    if (
        old.get("text") == plain
        and old.get("entities", []) == entities
        and old.get("reply_markup") == inline
    ):
        raise bad_request(NOT_MODIFIED)
    new = dict(old)
    new["text"] = plain
    new.pop("entities", None)
    new.pop("reply_markup", None)
    if entities:
        new["entities"] = entities
    if inline is not None:
        new["reply_markup"] = inline
    new["edit_date"] = now_s()
    message.obj = new
    bot.record(
        chat,
        _entry(
            "editMessageText",
            chat,
            message.message_id,
            text=plain,
            raw_text=raw_text,
            parse_mode=p.get_str("parse_mode"),
            reply_markup=raw_markup,
        ),
    )
    return new


@api_method("editMessageCaption", rate_limited=True)
async def edit_message_caption(bot: BotState, p: Params) -> Any:
    """Replace the caption (and inline keyboard) of a bot media message."""
    chat, message = _message_to_edit(bot, p)
    old = message.obj
    if "text" in old:
        raise bad_request("there is no caption in the message to edit")
    caption, entities = _parse_caption(p)
    raw_markup, inline = _reply_markup(p, inline_only=True)
    if (
        old.get("caption") == caption
        and old.get("caption_entities", []) == entities
        and old.get("reply_markup") == inline
    ):
        raise bad_request(NOT_MODIFIED)
    new = {k: v for k, v in old.items() if k not in ("caption", "caption_entities", "reply_markup")}
    if caption:
        new["caption"] = caption
    if entities:
        new["caption_entities"] = entities
    if inline is not None:
        new["reply_markup"] = inline
    new["edit_date"] = now_s()
    message.obj = new
    bot.record(
        chat,
        _entry(
            "editMessageCaption",
            chat,
            message.message_id,
            caption=caption,
            raw_text=p.get_str("caption"),
            parse_mode=p.get_str("parse_mode"),
            reply_markup=raw_markup,
        ),
    )
    return new


@api_method("editMessageReplyMarkup", rate_limited=True)
async def edit_message_reply_markup(bot: BotState, p: Params) -> Any:
    """Replace or remove the inline keyboard of a bot message."""
    chat, message = _message_to_edit(bot, p)
    raw_markup, inline = _reply_markup(p, inline_only=True)
    old = message.obj
    if old.get("reply_markup") == inline:
        raise bad_request(NOT_MODIFIED)
    new = {k: v for k, v in old.items() if k != "reply_markup"}
    if inline is not None:
        new["reply_markup"] = inline
    new["edit_date"] = now_s()
    message.obj = new
    bot.record(
        chat,
        _entry(
            "editMessageReplyMarkup",
            chat,
            message.message_id,
            text=new.get("text"),
            caption=new.get("caption"),
            reply_markup=raw_markup,
        ),
    )
    return new


@api_method("deleteMessage")
async def delete_message(bot: BotState, p: Params) -> Any:
    """Delete a message of the chat."""
    chat, message = _message_to_edit(bot, p, deleting=True)
    del chat.messages[message.message_id]
    bot.record(
        chat,
        _entry("deleteMessage", chat, message.message_id, text=_current_text(message.obj)),
    )
    return True


@api_method("answerCallbackQuery")
async def answer_callback_query(bot: BotState, p: Params) -> Any:
    """Answer an injected callback query once; later answers fail like Telegram's."""
    query_id = p.get_str("callback_query_id")
    record = bot.callbacks.pop(query_id, None) if query_id else None
    if record is None:
        raise bad_request(QUERY_INVALID)
    text = p.get_str("text")
    if text is not None and len(text) > MAX_CALLBACK_ANSWER_LEN:
        bot.callbacks[str(query_id)] = record
        raise bad_request("MESSAGE_TOO_LONG")
    chat = bot.chats.get(record.chat_id)
    if chat is not None:
        bot.record(
            chat,
            _entry(
                "answerCallbackQuery",
                chat,
                record.message_id,
                text=text,
                callback_query_id=query_id,
                callback_data=record.data,
                show_alert=p.get_bool("show_alert"),
                url=p.get_str("url"),
            ),
        )
    return True


@api_method("sendChatAction")
async def send_chat_action(bot: BotState, p: Params) -> Any:
    """Record a chat action (not rate limited, not written to the outbox)."""
    chat = _target_chat(bot, p)
    action = p.get_str("action")
    if action not in CHAT_ACTIONS:
        raise bad_request("wrong parameter action in request")
    chat.last_chat_action = action
    chat.chat_actions += 1
    return True


# ---------------------------------------------------------------- media & files


async def _resolve_input_file(
    bot: BotState,
    files: dict[str, UploadedFile],
    kind: str,
    value: Any,
    *,
    width_px: int | None = None,
    height_px: int | None = None,
    duration_s: int | None = None,
) -> FileRecord:
    """Turn an upload, an HTTP URL or a known file_id into a stored file record."""
    upload = None
    if isinstance(value, str) and value.startswith("attach://"):
        upload = files.get(value.removeprefix("attach://"))
        if upload is None:
            raise bad_request(WRONG_FILE)
    elif value is None and kind in files:
        upload = files[kind]
    if upload is not None:
        return _store_upload(bot, kind, upload, width_px, height_px, duration_s)
    if value is None or value == "":
        raise bad_request(f"there is no {kind} in the request")
    if not isinstance(value, str):
        raise bad_request(WRONG_FILE)
    if value.startswith(("http://", "https://")):
        return await _store_url(bot, kind, value, width_px, height_px, duration_s)
    record = bot.files.by_id.get(value)
    if record is None:
        raise bad_request(WRONG_FILE)
    return record


async def _store_url(
    bot: BotState,
    kind: str,
    url: str,
    width_px: int | None,
    height_px: int | None,
    duration_s: int | None,
) -> FileRecord:
    """Fetch a file given by URL as Telegram does (within its by-URL limit) and store it.

    The sandbox reaches only loopback hosts; a URL on another host (a test's placeholder such
    as cdn.example.test) is stored unfetched, its size unknown.
    """
    file_name = unquote(urlsplit(url).path.rsplit("/", 1)[-1]) or None
    size_bytes = None
    mime_type = guess_mime(file_name, kind)
    if kind == "photo":
        width_px = height_px = DEFAULT_IMAGE_SIDE_PX
    if is_loopback_host(url_host(url)):
        try:
            fetched = await fetch_url(url, limit_bytes=url_limit_bytes(kind))
        except UrlTooBig as exc:
            raise bad_request(WRONG_FILE) from exc
        except UrlFetchError as exc:
            raise bad_request(URL_UNREACHABLE) from exc
        if kind == "photo" and not (fetched.content_type or "").startswith("image/"):
            raise bad_request(WRONG_PHOTO_TYPE)
        size_bytes = fetched.size_bytes
        mime_type = fetched.content_type or mime_type
        if kind == "photo" and fetched.dimensions is not None:
            width_px, height_px = fetched.dimensions
    record = bot.files.add(
        kind,
        extension_for(file_name, kind),
        url=url,
        file_name=file_name,
        mime_type=mime_type,
        width=width_px,
        height=height_px,
        duration=duration_s,
    )
    record.file_size = size_bytes
    return record


def _store_upload(
    bot: BotState,
    kind: str,
    upload: UploadedFile,
    width_px: int | None,
    height_px: int | None,
    duration_s: int | None,
) -> FileRecord:
    """Store an uploaded file, sniffing picture dimensions."""
    data = upload.data
    if not data:
        raise bad_request("file must be non-empty")
    if len(data) > upload_limit_bytes("document"):
        raise ApiError(413, "Request Entity Too Large")
    if len(data) > upload_limit_bytes(kind):
        raise bad_request(PHOTO_TOO_BIG)
    if kind == "photo":
        width_px, height_px = image_size(data) or (DEFAULT_IMAGE_SIDE_PX, DEFAULT_IMAGE_SIDE_PX)
    elif kind in ("video", "animation"):
        width_px = width_px or DEFAULT_VIDEO_WIDTH_PX
        height_px = height_px or DEFAULT_VIDEO_HEIGHT_PX
    content_type = upload.content_type
    if not content_type or content_type == "application/octet-stream":
        content_type = guess_mime(upload.filename, kind)
    return bot.files.add(
        kind,
        extension_for(upload.filename, kind),
        data=data,
        file_name=upload.filename,
        mime_type=content_type,
        width=width_px,
        height=height_px,
        duration=duration_s,
    )


def _file_of_message(bot: BotState, obj: dict[str, Any]) -> tuple[str, FileRecord] | None:
    """Return (kind, file record) of a media message, or None for text messages."""
    for kind in MEDIA_KINDS:
        media = obj.get(kind)
        if media is None:
            continue
        item = media[-1] if isinstance(media, list) and media else media
        file_id = item.get("file_id") if isinstance(item, dict) else None
        record = bot.files.by_id.get(file_id) if isinstance(file_id, str) else None
        if record is not None:
            return kind, record
    return None


async def _send_media(bot: BotState, p: Params, method: str, kind: str) -> Any:
    """Send a photo, video, audio, document or animation message."""
    chat = _target_chat(bot, p)
    record = await _resolve_input_file(
        bot,
        p.files,
        kind,
        p.values.get(kind),
        width_px=p.get_int("width"),
        height_px=p.get_int("height"),
        duration_s=p.get_int("duration"),
    )
    caption, entities = _parse_caption(p)
    raw_markup, inline = _reply_markup(p)
    reply_to = _reply_target(chat, p)
    content: dict[str, Any] = {kind: media_object(record, kind)}
    if caption:
        content["caption"] = caption
    if entities:
        content["caption_entities"] = entities
    message = _store_bot_message(bot, chat, kind, content, inline, reply_to)
    bot.record(
        chat,
        _entry(
            method,
            chat,
            message.message_id,
            caption=caption,
            raw_text=p.get_str("caption"),
            parse_mode=p.get_str("parse_mode"),
            reply_markup=raw_markup,
            media=record.reference(),
        ),
    )
    return message.obj


def _register_media_senders() -> None:
    """Register sendPhoto, sendVideo, ...: alike but for the field that carries the file."""
    for method, kind in (("sendPhoto", "photo"), ("sendVideo", "video"),
                         ("sendAudio", "audio"), ("sendDocument", "document"),
                         ("sendAnimation", "animation")):
        api_method(method, rate_limited=True)(_media_sender(method, kind))


def _media_sender(method: str, kind: str) -> Handler:
    async def send(bot: BotState, p: Params) -> Any:
        return await _send_media(bot, p, method, kind)

    send.__doc__ = f"{method}: send the {kind} given by upload, URL or file_id."
    return send


_register_media_senders()


@api_method("getFile")
async def get_file(bot: BotState, p: Params) -> Any:
    """Return the File object whose file_path works under /file/bot<token>/."""
    file_id = p.get_str("file_id")
    record = bot.files.by_id.get(file_id) if file_id else None
    if record is None:
        raise bad_request("invalid file_id")
    if record.file_size is not None and record.file_size > MAX_GET_FILE_BYTES:
        raise bad_request("file is too big")
    return record.to_file()


@dataclass(slots=True)
class _InputMedia:
    """Hold one parsed InputMedia item."""

    kind: str
    record: FileRecord
    caption: str | None
    entities: list[dict[str, Any]]
    raw_caption: str | None
    parse_mode: str | None


async def _input_media(bot: BotState, p: Params, item: Any) -> _InputMedia:
    """Parse an InputMedia object (its `media` may be attach://, a URL or a file_id)."""
    if not isinstance(item, dict) or item.get("type") not in MEDIA_KINDS:
        raise bad_request("can't parse InputMedia JSON object")
    kind = str(item["type"])
    explicit = item.get("caption_entities")
    caption, entities = _caption_of(
        item.get("caption"),
        item.get("parse_mode"),
        explicit if isinstance(explicit, list) else None,
    )
    dims = {name: item.get(name) for name in ("width", "height", "duration")}
    record = await _resolve_input_file(
        bot,
        p.files,
        kind,
        item.get("media"),
        width_px=dims["width"] if isinstance(dims["width"], int) else None,
        height_px=dims["height"] if isinstance(dims["height"], int) else None,
        duration_s=dims["duration"] if isinstance(dims["duration"], int) else None,
    )
    raw_caption = item.get("caption")
    parse_mode = item.get("parse_mode")
    return _InputMedia(
        kind=kind,
        record=record,
        caption=caption,
        entities=entities,
        raw_caption=raw_caption if isinstance(raw_caption, str) else None,
        parse_mode=parse_mode if isinstance(parse_mode, str) else None,
    )


def _media_content(media: _InputMedia) -> dict[str, Any]:
    """Build the Message fields carrying one media item and its caption."""
    content: dict[str, Any] = {media.kind: media_object(media.record, media.kind)}
    if media.caption:
        content["caption"] = media.caption
    if media.entities:
        content["caption_entities"] = media.entities
    return content


@api_method("sendMediaGroup", rate_limited=True)
async def send_media_group(bot: BotState, p: Params) -> Any:
    """Send 2-10 photos/videos (or documents, or audios) as one album."""
    chat = _target_chat(bot, p)
    items = p.get_json("media", "media")
    if not isinstance(items, list):
        raise bad_request("can't parse media JSON object")
    if not MIN_MEDIA_GROUP_ITEMS <= len(items) <= MAX_MEDIA_GROUP_ITEMS:
        raise bad_request("wrong number of media in the album: must be 2-10")
    parsed = [await _input_media(bot, p, item) for item in items]
    kinds = {media.kind for media in parsed}
    if len(kinds) > 1 and kinds & {"document", "audio"}:
        raise bad_request("documents and audio files can't be mixed with other media types")
    reply_to = _reply_target(chat, p)
    group_id = str(time.time_ns())
    messages: list[dict[str, Any]] = []
    for media in parsed:
        content = {"media_group_id": group_id, **_media_content(media)}
        message = _store_bot_message(bot, chat, media.kind, content, None, reply_to)
        bot.record(
            chat,
            _entry(
                "sendMediaGroup",
                chat,
                message.message_id,
                caption=media.caption,
                raw_text=media.raw_caption,
                parse_mode=media.parse_mode,
                media=media.record.reference(),
                media_group_id=group_id,
            ),
        )
        messages.append(message.obj)
    return messages


@api_method("editMessageMedia", rate_limited=True)
async def edit_message_media(bot: BotState, p: Params) -> Any:
    """Replace the media (and caption, inline keyboard) of a bot media message."""
    chat, message = _message_to_edit(bot, p)
    old = message.obj
    if not any(kind in old for kind in MEDIA_KINDS):
        raise bad_request("there is no media in the message to edit")
    media = await _input_media(bot, p, p.get_json("media", "InputMedia"))
    raw_markup, inline = _reply_markup(p, inline_only=True)
    new = {k: v for k, v in old.items() if k not in EDITABLE_MEDIA_FIELDS}
    new.update(_media_content(media))
    if inline is not None:
        new["reply_markup"] = inline
    if {k: v for k, v in new.items() if k != "edit_date"} == {
        k: v for k, v in old.items() if k != "edit_date"
    }:
        raise bad_request(NOT_MODIFIED)
    new["edit_date"] = now_s()
    message.obj = new
    message.kind = media.kind
    bot.record(
        chat,
        _entry(
            "editMessageMedia",
            chat,
            message.message_id,
            caption=media.caption,
            raw_text=media.raw_caption,
            parse_mode=media.parse_mode,
            reply_markup=raw_markup,
            media=media.record.reference(),
        ),
    )
    return new


def _source_message(bot: BotState, p: Params, action: str) -> StoredMessage:
    """Find the message named by from_chat_id + message_id for copy/forward."""
    from_chat_id = p.get_int("from_chat_id")
    if from_chat_id is None:
        raise bad_request("from_chat_id is empty")
    source_chat = bot.chats.get(from_chat_id)
    if source_chat is None:
        raise bad_request("chat not found")
    message_id = p.get_int("message_id")
    source = source_chat.messages.get(message_id) if message_id is not None else None
    if source is None:
        raise bad_request(f"message to {action} not found")
    return source


def _copied_content(source: StoredMessage) -> dict[str, Any]:
    """Return the content fields of a message (text or media with caption)."""
    return {k: v for k, v in source.obj.items() if k in COPIED_FIELDS}


def _media_reference(bot: BotState, obj: dict[str, Any]) -> dict[str, Any] | None:
    """Return the outbox media reference of a media message."""
    found = _file_of_message(bot, obj)
    return found[1].reference() if found is not None else None


@api_method("copyMessage", rate_limited=True)
async def copy_message(bot: BotState, p: Params) -> Any:
    """Copy a message (without a link to the original); return its MessageId."""
    chat = _target_chat(bot, p)
    source = _source_message(bot, p, "copy")
    content = _copied_content(source)
    if p.has("caption") and "text" not in content:
        content.pop("caption_entities", None)
        caption, entities = _parse_caption(p)
        content.pop("caption", None)
        if caption:
            content["caption"] = caption
        if entities:
            content["caption_entities"] = entities
    raw_markup, inline = _reply_markup(p)
    reply_to = _reply_target(chat, p)
    message = _store_bot_message(bot, chat, source.kind, content, inline, reply_to)
    bot.record(
        chat,
        _entry(
            "copyMessage",
            chat,
            message.message_id,
            text=content.get("text"),
            caption=content.get("caption"),
            reply_markup=raw_markup,
            media=_media_reference(bot, content),
            from_chat_id=source.obj["chat"]["id"],
            from_message_id=source.message_id,
        ),
    )
    return {"message_id": message.message_id}


@api_method("forwardMessage", rate_limited=True)
async def forward_message(bot: BotState, p: Params) -> Any:
    """Forward a message, adding its forward_origin."""
    chat = _target_chat(bot, p)
    source = _source_message(bot, p, "forward")
    content = _copied_content(source)
    sender = source.obj.get("from")
    origin: dict[str, Any] = {"date": source.obj["date"]}
    if isinstance(sender, dict):
        origin.update(type="user", sender_user=sender)
    else:
        origin.update(type="chat", sender_chat=source.obj["chat"])
    message = _store_bot_message(
        bot, chat, source.kind, {"forward_origin": origin, **content}, None, None
    )
    bot.record(
        chat,
        _entry(
            "forwardMessage",
            chat,
            message.message_id,
            text=content.get("text"),
            caption=content.get("caption"),
            media=_media_reference(bot, content),
            from_chat_id=source.obj["chat"]["id"],
            from_message_id=source.message_id,
        ),
    )
    return message.obj


@api_method("getChat")
async def get_chat(bot: BotState, p: Params) -> Any:
    """Return ChatFullInfo of a known chat."""
    chat_id = p.chat_id()
    if chat_id is None:
        raise bad_request("chat_id is empty")
    chat = bot.chats.get(chat_id)
    if chat is None:
        raise bad_request("chat not found")
    return {
        **chat.obj,
        "accent_color_id": 0,
        "max_reaction_count": 11,
        "accepted_gift_types": {
            "unlimited_gifts": False,
            "limited_gifts": False,
            "unique_gifts": False,
            "premium_subscription": False,
            "gifts_from_channels": False,
        },
    }


# ---------------------------------------------------------------- bot settings


def _commands_key(p: Params) -> str:
    """Build the storage key of a command list from its scope and language code."""
    scope = p.get_json("scope", "bot command scope")
    scope_type = scope.get("type", "default") if isinstance(scope, dict) else "default"
    chat_id = scope.get("chat_id", "") if isinstance(scope, dict) else ""
    return f"{scope_type}:{chat_id}:{p.get_str('language_code') or ''}"


@api_method("setMyCommands")
async def set_my_commands(bot: BotState, p: Params) -> Any:
    """Store the command list for a scope and language."""
    commands = p.get_json("commands", "bot commands")
    if not isinstance(commands, list) or len(commands) > MAX_BOT_COMMANDS:
        raise bad_request("can't parse bot commands JSON object")
    for command in commands:
        if not isinstance(command, dict) or not BOT_COMMAND_RE.match(str(command.get("command"))):
            raise bad_request("BOT_COMMAND_INVALID")
        description = command.get("description")
        if (
            not isinstance(description, str)
            or not 1 <= len(description) <= MAX_COMMAND_DESCRIPTION_LEN
        ):
            raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
    bot.commands[_commands_key(p)] = [
        {"command": c["command"], "description": c["description"]} for c in commands
    ]
    return True


@api_method("getMyCommands")
async def get_my_commands(bot: BotState, p: Params) -> Any:
    """Return the command list of a scope and language."""
    return bot.commands.get(_commands_key(p), [])


@api_method("deleteMyCommands")
async def delete_my_commands(bot: BotState, p: Params) -> Any:
    """Forget the command list of a scope and language."""
    bot.commands.pop(_commands_key(p), None)
    return True


async def _accept(bot: BotState, p: Params) -> Any:
    """Accept a settings call that has no observable effect in the sandbox."""
    return True


for _name in (
    "setMyDescription",
    "setMyShortDescription",
    "setMyName",
    "setChatMenuButton",
    "setMyDefaultAdministratorRights",
    "logOut",
    "close",
):
    api_method(_name)(_accept)
