"""Build Telegram updates from the control API's simplified user-activity items."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any, Final

import orjson

from sandbox.telegram.markup import command_entities
from sandbox.telegram.media import (
    EXTENSION_BY_KIND,
    guess_mime,
    image_size,
    make_fake_video,
    make_png,
    make_wav,
    palette_color,
)
from sandbox.telegram.state import (
    ALL_UPDATE_TYPES,
    BotState,
    CallbackRecord,
    ChatState,
    FileRecord,
    StoredMessage,
    StoredUpdate,
    now_s,
)

PHOTO_THUMB_SIDE_PX: Final[int] = 90
PHOTO_DEFAULT_SIDE_PX: Final[int] = 320
PHOTO_MAX_SIDE_PX: Final[int] = 2_048
VIDEO_DEFAULT_WIDTH_PX: Final[int] = 320
VIDEO_DEFAULT_HEIGHT_PX: Final[int] = 240
MAX_INJECTED_AUDIO_S: Final[int] = 60
DEFAULT_DOCUMENT_TEXT: Final[str] = "sandbox document\n"
DEFAULT_GROUP_TYPE: Final[str] = "supergroup"
CHAT_TYPES: Final[frozenset[str]] = frozenset({"private", "group", "supergroup", "channel"})

Built = tuple[str, dict[str, Any], int]


class InjectError(ValueError):
    """Report an invalid inject item (the control API answers 400)."""


def _int_field(item: dict[str, Any], name: str) -> int | None:
    """Read an optional integer field of an item."""
    value = item.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InjectError(f"{name} must be an integer")
    return value


def _str_field(item: dict[str, Any], name: str) -> str | None:
    """Read an optional string field of an item."""
    value = item.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InjectError(f"{name} must be a string")
    return value


def _content_field(item: dict[str, Any]) -> bytes | None:
    """Read the optional `content_base64` field: the user's own file bytes."""
    value = _str_field(item, "content_base64")
    if value is None:
        return None
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InjectError("content_base64 must be base64") from exc
    if not data:
        raise InjectError("content_base64 must not be empty")
    return data


# The fields of a human's Bot API `User` an item may set (first_name has a default).
PROFILE_FIELDS: Final[tuple[str, ...]] = ("first_name", "last_name", "username", "language_code")


def make_user(item: dict[str, Any], user_id: int) -> dict[str, Any]:
    """Build the Bot API `User` of the human behind an item."""
    user: dict[str, Any] = {
        "id": user_id,
        "is_bot": False,
        "first_name": _str_field(item, "first_name") or f"User{user_id}",
    }
    for name in PROFILE_FIELDS[1:]:
        value = _str_field(item, name)
        if value:
            user[name] = value
    if item.get("is_premium") is True:
        user["is_premium"] = True
    return user


def ensure_chat(
    bot: BotState,
    chat_id: int,
    user: dict[str, Any] | None = None,
    chat_type: str | None = None,
    title: str | None = None,
) -> ChatState:
    """Return the chat, creating it (private for positive ids, supergroup otherwise)."""
    chat = bot.chats.get(chat_id)
    kind = chat_type or ("private" if chat_id > 0 else DEFAULT_GROUP_TYPE)
    if kind not in CHAT_TYPES:
        raise InjectError(f"chat_type must be one of {sorted(CHAT_TYPES)}")
    if kind == "private":
        obj: dict[str, Any] = {"id": chat_id, "type": "private"}
        source = user if user is not None and user["id"] == chat_id else None
        if source is not None:
            for name in ("first_name", "last_name", "username"):
                if name in source:
                    obj[name] = source[name]
        elif chat is not None:
            return chat
        else:
            obj["first_name"] = f"User{chat_id}"
    else:
        if chat is not None and title is None:
            return chat
        obj = {"id": chat_id, "type": kind, "title": title or f"Sandbox {kind} {abs(chat_id)}"}
    if chat is None:
        chat = ChatState(id=chat_id, obj=obj, user=user if kind == "private" else None)
        bot.chats[chat_id] = chat
    elif chat.obj != obj:
        chat.obj = obj
        if kind == "private":
            chat.user = user
    return chat


def _chat_and_user(bot: BotState, item: dict[str, Any]) -> tuple[ChatState, dict[str, Any]]:
    """Resolve the chat and the acting user of an item (private chat: chat id == user id)."""
    chat_id = _int_field(item, "chat_id")
    user_id = _int_field(item, "user_id")
    if chat_id is None and user_id is None:
        raise InjectError("chat_id or user_id is required")
    if chat_id is None:
        chat_id = user_id
    if user_id is None:
        if chat_id is not None and chat_id < 0:
            raise InjectError("user_id is required for group chats")
        user_id = chat_id
    assert chat_id is not None and user_id is not None
    user = make_user(item, user_id)
    chat = ensure_chat(bot, chat_id, user, _str_field(item, "chat_type"), _str_field(item, "title"))
    return chat, user


def _new_user_message(
    bot: BotState, chat: ChatState, user: dict[str, Any], item: dict[str, Any], kind: str
) -> dict[str, Any]:
    """Allocate and store a user message skeleton; the caller adds its content."""
    message_id = chat.new_message_id()
    obj: dict[str, Any] = {
        "message_id": message_id,
        "from": user,
        "chat": chat.obj,
        "date": _int_field(item, "date") or now_s(),
    }
    reply_id = _int_field(item, "reply_to_message_id")
    if reply_id is not None:
        target = chat.messages.get(reply_id)
        if target is not None:
            replied = dict(target.obj)
            replied.pop("reply_to_message", None)
            obj["reply_to_message"] = replied
    chat.store(StoredMessage(message_id, False, obj, kind), bot.config.max_messages_per_chat)
    return obj


def _caption(obj: dict[str, Any], item: dict[str, Any]) -> None:
    """Copy an item's caption (with command entities) into a message."""
    caption = _str_field(item, "caption")
    if caption:
        obj["caption"] = caption
        entities = command_entities(caption)
        if entities:
            obj["caption_entities"] = entities


def build_message(bot: BotState, item: dict[str, Any]) -> Built:
    """Build a text message update; `/...` texts get a bot_command entity."""
    text = _str_field(item, "text")
    if item.get("kind") == "command" and text and not text.startswith("/"):
        text = "/" + text
    if not text:
        raise InjectError("text is required for message items")
    chat, user = _chat_and_user(bot, item)
    obj = _new_user_message(bot, chat, user, item, "text")
    obj["text"] = text
    entities = command_entities(text)
    if entities:
        obj["entities"] = entities
    return "message", obj, chat.id


def build_edited_message(bot: BotState, item: dict[str, Any]) -> Built:
    """Build an edited_message update for an earlier injected text message."""
    text = _str_field(item, "text")
    message_id = _int_field(item, "message_id")
    if not text or message_id is None:
        raise InjectError("text and message_id are required for edited_message items")
    chat, _user = _chat_and_user(bot, item)
    stored = chat.messages.get(message_id)
    if stored is None or stored.from_bot or "text" not in stored.obj:
        raise InjectError("message_id must be an injected text message of this chat")
    obj = dict(stored.obj)
    obj["text"] = text
    obj.pop("entities", None)
    entities = command_entities(text)
    if entities:
        obj["entities"] = entities
    obj["edit_date"] = now_s()
    stored.obj = obj
    return "edited_message", obj, chat.id


def build_callback(bot: BotState, item: dict[str, Any]) -> Built:
    """Build a callback_query for a button under a bot message (default: the latest one)."""
    data = _str_field(item, "data")
    if data is None:
        raise InjectError("data is required for callback items")
    chat, user = _chat_and_user(bot, item)
    message_id = _int_field(item, "message_id")
    target = chat.messages.get(message_id) if message_id is not None else chat.last_bot_message()
    message: dict[str, Any]
    if target is None:
        message = {"chat": chat.obj, "message_id": message_id or 0, "date": 0}
    else:
        message = target.obj
    query_id = bot.new_callback_id()
    bot.callbacks[query_id] = CallbackRecord(
        chat_id=chat.id,
        user_id=user["id"],
        message_id=target.message_id if target is not None else message_id,
        data=data,
    )
    payload = {
        "id": query_id,
        "from": user,
        "message": message,
        "chat_instance": str((bot.bot_id * 1_000_003 + chat.id) % 10**18),
        "data": data,
    }
    return "callback_query", payload, chat.id


def _photo_sizes(bot: BotState, item: dict[str, Any]) -> list[dict[str, Any]]:
    """Generate two PNG sizes of a solid-colour picture and store them as files."""
    side_w = _int_field(item, "width") or PHOTO_DEFAULT_SIDE_PX
    side_h = _int_field(item, "height") or PHOTO_DEFAULT_SIDE_PX
    if not (1 <= side_w <= PHOTO_MAX_SIDE_PX and 1 <= side_h <= PHOTO_MAX_SIDE_PX):
        raise InjectError(f"width and height must be in 1..{PHOTO_MAX_SIDE_PX}")
    color = palette_color(_int_field(item, "color") or len(bot.files.by_id))
    sizes: list[dict[str, Any]] = []
    scale = max(side_w, side_h) / PHOTO_THUMB_SIDE_PX
    dims = [(max(1, round(side_w / scale)), max(1, round(side_h / scale)))] if scale > 1 else []
    dims.append((side_w, side_h))
    for width_px, height_px in dims:
        data = make_png(width_px, height_px, color)
        record = bot.files.add(
            "photo", "png", data=data, mime_type="image/png", width=width_px, height=height_px
        )
        sizes.append(photo_size(record))
    return sizes


def photo_size(record: FileRecord) -> dict[str, Any]:
    """Return a Bot API `PhotoSize` for a stored picture."""
    size: dict[str, Any] = {
        "file_id": record.file_id,
        "file_unique_id": record.file_unique_id,
        "width": record.width or 0,
        "height": record.height or 0,
    }
    if record.file_size is not None:
        size["file_size"] = record.file_size
    return size


def media_object(record: FileRecord, kind: str) -> Any:
    """Return the Bot API object (`Video`, `Audio`, `Document`, photo sizes) of a file."""
    if kind == "photo":
        return [photo_size(record)]
    obj: dict[str, Any] = {"file_id": record.file_id, "file_unique_id": record.file_unique_id}
    if kind in ("video", "animation"):
        obj["width"] = record.width or 0
        obj["height"] = record.height or 0
        obj["duration"] = record.duration or 0
    elif kind in ("audio", "voice"):
        obj["duration"] = record.duration or 0
    if record.file_name and kind != "voice":
        obj["file_name"] = record.file_name
    if record.mime_type:
        obj["mime_type"] = record.mime_type
    if record.file_size is not None:
        obj["file_size"] = record.file_size
    return obj


def _uploaded_photo(bot: BotState, data: bytes) -> list[dict[str, Any]]:
    """Store the user's own picture as the one size of a photo (PNG or JPEG only)."""
    dims = image_size(data)
    if dims is None:
        raise InjectError("content_base64 of a photo must be a PNG or JPEG")
    extension = "png" if data.startswith(b"\x89PNG") else "jpg"
    record = bot.files.add("photo", extension, data=data, mime_type=guess_mime(
        f"photo.{extension}", "photo"), width=dims[0], height=dims[1])
    return [photo_size(record)]


def build_photo(bot: BotState, item: dict[str, Any]) -> Built:
    """Build a photo message with the user's picture or a generated PNG; getFile serves it."""
    chat, user = _chat_and_user(bot, item)
    content = _content_field(item)
    sizes = _photo_sizes(bot, item) if content is None else _uploaded_photo(bot, content)
    obj = _new_user_message(bot, chat, user, item, "photo")
    obj["photo"] = sizes
    _caption(obj, item)
    return "message", obj, chat.id


def build_file_message(bot: BotState, item: dict[str, Any]) -> Built:
    """Build a document, audio or video message with the user's bytes or generated content."""
    kind = str(item["kind"])
    chat, user = _chat_and_user(bot, item)
    file_name = _str_field(item, "file_name")
    duration_s = _int_field(item, "duration") or 1
    width_px: int | None = None
    height_px: int | None = None
    content = _content_field(item)
    if content is not None:
        data = content
        file_name = file_name or f"{kind}.{EXTENSION_BY_KIND.get(kind, 'bin')}"
        if kind == "video":
            width_px = _int_field(item, "width") or VIDEO_DEFAULT_WIDTH_PX
            height_px = _int_field(item, "height") or VIDEO_DEFAULT_HEIGHT_PX
    elif kind == "document":
        data = (_str_field(item, "content") or DEFAULT_DOCUMENT_TEXT).encode()
        file_name = file_name or "document.txt"
    elif kind == "audio":
        if not 1 <= duration_s <= MAX_INJECTED_AUDIO_S:
            raise InjectError(f"duration must be in 1..{MAX_INJECTED_AUDIO_S}")
        data = make_wav(duration_s)
        file_name = file_name or "audio.wav"
    else:
        data = make_fake_video()
        file_name = file_name or "video.mp4"
        width_px = _int_field(item, "width") or VIDEO_DEFAULT_WIDTH_PX
        height_px = _int_field(item, "height") or VIDEO_DEFAULT_HEIGHT_PX
    mime_type = _str_field(item, "mime_type") or guess_mime(file_name, kind)
    extension = file_name.rsplit(".", 1)[-1] if "." in file_name else "bin"
    record = bot.files.add(
        kind,
        extension,
        data=data,
        file_name=file_name,
        mime_type=mime_type,
        width=width_px,
        height=height_px,
        duration=duration_s if kind != "document" else None,
    )
    obj = _new_user_message(bot, chat, user, item, kind)
    obj[kind] = media_object(record, kind)
    _caption(obj, item)
    return "message", obj, chat.id


def build_member_change(bot: BotState, item: dict[str, Any]) -> Built:
    """Build my_chat_member for a user blocking (`block`) or unblocking (`unblock`) the bot."""
    blocked = item.get("kind") == "block"
    chat, user = _chat_and_user(bot, item)
    member = {"status": "member", "user": bot.user_obj}
    kicked = {"status": "kicked", "user": bot.user_obj, "until_date": 0}
    chat.blocked = blocked
    payload = {
        "chat": chat.obj,
        "from": user,
        "date": now_s(),
        "old_chat_member": member if blocked else kicked,
        "new_chat_member": kicked if blocked else member,
    }
    return "my_chat_member", payload, chat.id


def build_raw(bot: BotState, item: dict[str, Any]) -> Built:
    """Accept a complete update body (its update_id is replaced)."""
    update = item.get("update")
    if not isinstance(update, dict):
        raise InjectError("raw items need an `update` object")
    kinds = [key for key in update if key != "update_id"]
    if len(kinds) != 1 or kinds[0] not in ALL_UPDATE_TYPES:
        raise InjectError("a raw update must contain exactly one known update type")
    payload = update[kinds[0]]
    if not isinstance(payload, dict):
        raise InjectError("the update payload must be an object")
    return kinds[0], payload, _chat_key(payload)


def _chat_key(payload: dict[str, Any]) -> int:
    """Find the chat an update payload belongs to (for per-chat webhook ordering)."""
    for holder in (payload, payload.get("message")):
        if isinstance(holder, dict):
            chat = holder.get("chat")
            if isinstance(chat, dict) and isinstance(chat.get("id"), int):
                return int(chat["id"])
    sender = payload.get("from") or payload.get("user")
    if isinstance(sender, dict) and isinstance(sender.get("id"), int):
        return int(sender["id"])
    return 0


BUILDERS: Final[dict[str, Callable[[BotState, dict[str, Any]], Built]]] = {
    "message": build_message,
    "command": build_message,
    "edited_message": build_edited_message,
    "callback": build_callback,
    "callback_query": build_callback,
    "photo": build_photo,
    "document": build_file_message,
    "audio": build_file_message,
    "video": build_file_message,
    "block": build_member_change,
    "unblock": build_member_change,
    "raw": build_raw,
}


def inject(bot: BotState, items: list[Any]) -> list[int | None]:
    """Turn items into updates; return assigned update ids (None when filtered out)."""
    ids: list[int | None] = []
    ready: list[StoredUpdate] = []
    try:
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                raise InjectError(f"item {index}: must be an object")
            kind = item.get("kind", "message")
            builder = BUILDERS.get(kind) if isinstance(kind, str) else None
            if builder is None:
                raise InjectError(f"item {index}: unknown kind {kind!r}; known: {sorted(BUILDERS)}")
            try:
                update_type, payload, chat_key = builder(bot, item)
            except InjectError as exc:
                raise InjectError(f"item {index}: {exc}") from exc
            bot.stats.injected += 1
            if not bot.is_allowed(update_type):
                bot.stats.filtered += 1
                ids.append(None)
                continue
            update_id = bot.allocate_update_id()
            body = orjson.dumps({"update_id": update_id, update_type: payload})
            ready.append(StoredUpdate(update_id, chat_key, update_type, body))
            ids.append(update_id)
    finally:
        if ready:
            bot.push_updates(ready)
        else:
            bot.notify()
    return ids
