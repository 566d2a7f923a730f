"""Send a job's result files to a chat, each the cheapest way Telegram takes it.

Routes, tried in order per file until one fits its size (Telegram's documented limits):

    image   photo by URL <= 5 MB, photo upload <= 10 MB, document by URL <= 20 MB,
            document upload <= 50 MB, else a link
    video   video by URL <= 20 MB, video upload <= 50 MB, else a link   (audio alike)
    other   document by URL <= 20 MB, document upload <= 50 MB, else a link

"By URL" lets Telegram fetch Kie's file itself; an upload streams it through a temporary file
(files.downloaded), never whole in memory. A file Telegram refuses on one
route (it could not fetch the URL, a photo's dimensions) moves to the next route. A file
Telegram already has (an earlier `file_id`) is sent by that id: history re-sends work after
Kie's URLs expired.

An image of unknown size is sent as a photo by URL without probing it first (URL_FIRST_KINDS):
nearly every generated image is under 5 MB, and Telegram answers 400 for a photo URL it cannot
fetch or that is over 5 MB, so the HEAD would only delay the common case. On that refusal the
file is probed and continues on its size's remaining routes (upload, document, link). Video,
audio and documents are probed first: they are often over 20 MB, and a refused URL would cost
Telegram's fetch of 20 MB before the right route.

Several files go out as albums (sendMediaGroup, 2-10 items; photos and videos together, audio
and documents each on their own, larger sets split evenly); an album Telegram refuses is
sent again file by file. Links go in one text message. The caption rides on the first message.
Buttons (`reply_markup`) ride on a result that is one message; several files get them on a
follow-up text (`markup_text`) after the last one, since an album takes no keyboard.

Outcomes: SENT (with the file_id and message of every item sent), BLOCKED (403: the user
blocked the bot; nothing more is tried), REJECTED (Telegram refuses the chat itself), or
UNAVAILABLE (no file could be read from Kie). Telegram's 429 and outages are retried by the
Bot's middleware (services/telegram/bot.py); an outage outlasting it raises
TelegramNetworkError/TelegramServerError to the caller, which retries the whole delivery later:
items sent before the outage are then sent again (at-least-once, like every Bot API send).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

import aiohttp
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError
from aiogram.methods import (
    SendAudio,
    SendDocument,
    SendMediaGroup,
    SendMessage,
    SendPhoto,
    SendVideo,
)
from aiogram.types import (
    InlineKeyboardMarkup,
    InputFile,
    InputMediaAudio,
    InputMediaDocument,
    InputMediaPhoto,
    InputMediaVideo,
    Message,
)

from services.delivery.files import (
    MB,
    Media,
    ResultFetchError,
    ResultFile,
    ResultKind,
    downloaded,
    file_name,
    probe_size,
)

logger = logging.getLogger(__name__)

MAX_CAPTION_UTF16: Final[int] = 1_024  # Telegram counts caption length in UTF-16 code units
MAX_TEXT_UTF16: Final[int] = 4_096
MAX_ALBUM_ITEMS: Final[int] = 10
# A 50 MB upload needs longer than the Bot's default 30 s request timeout.
UPLOAD_REQUEST_TIMEOUT_S: Final[int] = 300
ELLIPSIS: Final[str] = "…"
# Kinds whose first route (by URL) is tried before the size is known; see the module doc.
URL_FIRST_KINDS: Final[frozenset[ResultKind]] = frozenset({ResultKind.IMAGE})
# Telegram's descriptions that concern the chat, not the file: no other route would help.
CHAT_ERRORS: Final[tuple[str, ...]] = ("chat not found", "chat_id is empty", "user not found",
                                       "PEER_ID_INVALID")


class Outcome(StrEnum):
    """How a delivery ended."""

    SENT = "sent"  # every readable file reached the chat (as media or as a link)
    BLOCKED = "blocked"  # 403: the user blocked the bot (or is deactivated)
    REJECTED = "rejected"  # Telegram refused the chat itself (not found, ...)
    UNAVAILABLE = "unavailable"  # no result file could be read from its URL


class Source(StrEnum):
    """What a send hands Telegram for a file."""

    URL = "url"  # Kie's URL: Telegram fetches the file itself
    UPLOAD = "upload"  # the bytes, streamed from Kie's URL through this process
    FILE_ID = "file_id"  # a file Telegram already has


@dataclass(frozen=True, slots=True)
class Route:
    """One way to send a file: as which media, from which source, up to what size."""

    media: Media
    source: Source
    max_bytes: int


ROUTES: Final[dict[ResultKind, tuple[Route, ...]]] = {
    ResultKind.IMAGE: (Route(Media.PHOTO, Source.URL, 5 * MB),
                       Route(Media.PHOTO, Source.UPLOAD, 10 * MB),
                       Route(Media.DOCUMENT, Source.URL, 20 * MB),
                       Route(Media.DOCUMENT, Source.UPLOAD, 50 * MB)),
    ResultKind.VIDEO: (Route(Media.VIDEO, Source.URL, 20 * MB),
                       Route(Media.VIDEO, Source.UPLOAD, 50 * MB)),
    ResultKind.AUDIO: (Route(Media.AUDIO, Source.URL, 20 * MB),
                       Route(Media.AUDIO, Source.UPLOAD, 50 * MB)),
    ResultKind.OTHER: (Route(Media.DOCUMENT, Source.URL, 20 * MB),
                       Route(Media.DOCUMENT, Source.UPLOAD, 50 * MB)),
}
SEND_METHODS: Final[dict[Media, tuple[type[Any], str]]] = {
    Media.PHOTO: (SendPhoto, "photo"), Media.VIDEO: (SendVideo, "video"),
    Media.AUDIO: (SendAudio, "audio"), Media.DOCUMENT: (SendDocument, "document"),
}
ALBUM_ITEMS: Final[dict[Media, type[Any]]] = {
    Media.PHOTO: InputMediaPhoto, Media.VIDEO: InputMediaVideo,
    Media.AUDIO: InputMediaAudio, Media.DOCUMENT: InputMediaDocument,
}
# Albums may mix photos and videos; audio and documents only go with their own kind.
ALBUM_FAMILY: Final[dict[Media, Media]] = {
    Media.PHOTO: Media.PHOTO, Media.VIDEO: Media.PHOTO,
    Media.AUDIO: Media.AUDIO, Media.DOCUMENT: Media.DOCUMENT,
}
# Fields of a Message that carry a file, in the order Telegram may convert to (a GIF sent
# with sendVideo comes back as an animation).
MESSAGE_FILE_FIELDS: Final[tuple[str, ...]] = ("photo", "video", "animation", "audio", "voice",
                                               "document")


@dataclass(frozen=True, slots=True)
class SentItem:
    """One result file as it reached the chat; `media` and `file_id` are None for a link."""

    index: int
    message_id: int
    media: Media | None
    file_id: str | None


@dataclass(slots=True)
class Delivery:
    """What a delivery did: its outcome, every item sent, the files that could not be read."""

    outcome: Outcome
    sent: list[SentItem] = field(default_factory=list)
    unavailable: list[int] = field(default_factory=list)
    message_ids: list[int] = field(default_factory=list)
    detail: str | None = None

    def file_ids(self, count: int) -> list[str | None]:
        """Return the Telegram file_id of each of `count` files (None: a link or not sent)."""
        by_index = {item.index: item.file_id for item in self.sent}
        return [by_index.get(index) for index in range(count)]


@dataclass(slots=True)
class _Item:
    """A file being delivered: where it stands on its list of routes."""

    index: int
    file: ResultFile
    size_bytes: int | None  # None: not probed yet (its first route goes by URL, unprobed)
    routes: list[Route]

    @property
    def route(self) -> Route | None:
        """Return the route to try next, None once only a link is left."""
        return self.routes[0] if self.routes else None


class _Stop(Exception):
    """The chat refuses messages: the delivery ends with this outcome."""

    def __init__(self, outcome: Outcome, detail: str) -> None:
        super().__init__(detail)
        self.outcome = outcome
        self.detail = detail


def utf16_len(text: str) -> int:
    """Return the length of text in UTF-16 code units, as Telegram counts it."""
    return len(text.encode("utf-16-le")) // 2


def clip(text: str, limit_utf16: int) -> str:
    """Cut text to at most limit_utf16 UTF-16 units, ending with an ellipsis when cut."""
    if utf16_len(text) <= limit_utf16:
        return text
    out: list[str] = []
    used = 1  # the ellipsis
    for char in text:
        used += 2 if ord(char) > 0xFFFF else 1
        if used > limit_utf16:
            break
        out.append(char)
    return "".join(out) + ELLIPSIS


def routes_for(kind: ResultKind, size_bytes: int) -> list[Route]:
    """Return the routes a file of this kind and size may take, cheapest first."""
    return [route for route in ROUTES[kind] if size_bytes <= route.max_bytes]


def file_of(message: Message) -> str | None:
    """Return the file_id a sent message carries (the largest photo size for a photo)."""
    for name in MESSAGE_FILE_FIELDS:
        value: Any = getattr(message, name, None)
        if isinstance(value, list):
            value = value[-1] if value else None
        if value is not None:
            return str(value.file_id)
    return None


def _uploads(items: list[_Item]) -> bool:
    """Tell whether any item's current route uploads its file."""
    return any(item.route is not None and item.route.source is Source.UPLOAD for item in items)


def _even_chunks(items: list[_Item]) -> list[list[_Item]]:
    """Split items into the fewest albums of <= 10, as even as possible (11 -> 6 + 5)."""
    count = -(-len(items) // MAX_ALBUM_ITEMS)
    size, extra = divmod(len(items), count)
    chunks, start = [], 0
    for number in range(count):
        end = start + size + (1 if number < extra else 0)
        chunks.append(items[start:end])
        start = end
    return chunks


class ResultSender:
    """Send result files with a Bot, reading Kie's files through one aiohttp session."""

    def __init__(self, bot: Bot, http: aiohttp.ClientSession) -> None:
        """Use `bot` for the Bot API and `http` for HEAD/GET of result URLs."""
        self._bot = bot
        self._http = http

    async def send(self, chat_id: int, files: list[ResultFile], *, caption: str = "",
                   reply_markup: InlineKeyboardMarkup | None = None,
                   markup_text: str = "") -> Delivery:
        """Send every file to chat_id, the caption on the first message, the buttons on the
        only message or on a follow-up with markup_text; see the module doc."""
        delivery = Delivery(Outcome.SENT)
        items = await self._plan(files, delivery)
        caption = clip(caption, MAX_CAPTION_UTF16)
        # One file is one message (or one link message): the buttons go on it.
        markup = reply_markup if len(items) == 1 else None
        # Taken before sending: an item whose routes all get refused sends its own link.
        links = [item for item in items if item.route is None]
        try:
            caption = await self._send_media(chat_id, [i for i in items if i.route], caption,
                                             delivery, markup)
            if links:
                await self._send_links(chat_id, links, caption, delivery, markup)
            if reply_markup is not None and len(items) > 1 and delivery.sent:
                message = await self._call(SendMessage(
                    chat_id=chat_id, text=clip(markup_text or "…", MAX_TEXT_UTF16),
                    reply_markup=reply_markup))
                delivery.message_ids.append(message.message_id)
        except _Stop as stop:
            delivery.outcome, delivery.detail = stop.outcome, stop.detail
            logger.info("delivery_stopped", extra={"chat_id": chat_id, "outcome": stop.outcome,
                                                   "detail": stop.detail})
            return delivery
        if not delivery.sent:
            delivery.outcome = Outcome.UNAVAILABLE
        return delivery

    async def _plan(self, files: list[ResultFile], delivery: Delivery) -> list[_Item]:
        """Learn each file's size (concurrently) and its routes; unreadable files are noted.

        A file of URL_FIRST_KINDS whose size is unknown is not probed: it starts on its
        first route (by URL) alone, and is probed only if Telegram refuses that.
        """
        sizes = await asyncio.gather(*(self._size_of(file) for file in files),
                                     return_exceptions=True)
        items = []
        for index, (file, size) in enumerate(zip(files, sizes, strict=True)):
            if isinstance(size, ResultFetchError):
                logger.warning("result_unreadable", extra={"index": index, "error": str(size)})
                delivery.unavailable.append(index)
                continue
            if isinstance(size, BaseException):
                raise size
            routes = [ROUTES[file.kind][0]] if size is None else self._routes(file, size)
            items.append(_Item(index, file, size, routes))
        return items

    async def _size_of(self, file: ResultFile) -> int | None:
        """Return a file's size: known, not needed (a file_id), not yet needed (None: a
        URL-first kind), or probed from its URL."""
        if file.file_id is not None:
            return 0
        if file.size_bytes is not None:
            return file.size_bytes
        if file.kind in URL_FIRST_KINDS:
            return None
        assert file.url is not None
        return await probe_size(self._http, file.url)

    async def _probe_after_refusal(self, item: _Item, refused: Route) -> None:
        """Give an unprobed item whose URL route Telegram refused the routes its size allows
        (the refused one left out); raises ResultFetchError when the file cannot be read."""
        assert item.file.url is not None
        item.size_bytes = await probe_size(self._http, item.file.url)
        item.routes = [route for route in self._routes(item.file, item.size_bytes)
                       if route != refused]

    def _routes(self, file: ResultFile, size_bytes: int) -> list[Route]:
        """Return a file's routes; a cached file_id goes first, its URL's routes after it."""
        routes = routes_for(file.kind, size_bytes) if file.url is not None else []
        if file.file_id is not None and file.media is not None:
            routes.insert(0, Route(file.media, Source.FILE_ID, max_bytes=0))
        return routes

    async def _send_media(self, chat_id: int, items: list[_Item], caption: str,
                          delivery: Delivery, markup: InlineKeyboardMarkup | None) -> str:
        """Send items as albums by family (or singly); return the caption if still unused."""
        families: dict[Media, list[_Item]] = {}
        for item in items:
            assert item.route is not None
            families.setdefault(ALBUM_FAMILY[item.route.media], []).append(item)
        for family in families.values():
            for chunk in _even_chunks(family):
                if len(chunk) > 1 and await self._try_album(chat_id, chunk, caption, delivery):
                    caption = ""
                    continue
                for item in chunk:
                    if await self._send_single(chat_id, item, caption, delivery, markup):
                        caption = ""
        return caption

    async def _try_album(self, chat_id: int, chunk: list[_Item], caption: str,
                         delivery: Delivery) -> bool:
        """Send chunk as one album on each item's current route; False if it did not go."""
        try:
            async with contextlib.AsyncExitStack() as stack:
                album = []
                for number, item in enumerate(chunk):
                    assert item.route is not None
                    source = await stack.enter_async_context(self._source(item))
                    album.append(ALBUM_ITEMS[item.route.media](
                        media=source, caption=caption if number == 0 and caption else None))
                messages = await self._call(SendMediaGroup(chat_id=chat_id, media=album),
                                            uploading=_uploads(chunk))
        except (TelegramBadRequest, ResultFetchError) as exc:
            logger.info("album_refused", extra={"chat_id": chat_id, "items": len(chunk),
                                                "error": str(exc)[:200]})
            return False
        for item, message in zip(chunk, messages, strict=False):
            self._record(delivery, item, message)
        return True

    async def _send_single(self, chat_id: int, item: _Item, caption: str,
                           delivery: Delivery, markup: InlineKeyboardMarkup | None) -> bool:
        """Send one file, moving down its routes on refusal (a link at the end); return
        whether a message went out (and so carried the caption)."""
        while (route := item.route) is not None:
            method, field_name = SEND_METHODS[route.media]
            try:
                async with self._source(item) as source:
                    message = await self._call(
                        method(chat_id=chat_id, caption=caption or None, reply_markup=markup,
                               **{field_name: source}),
                        uploading=_uploads([item]))
            except TelegramBadRequest as exc:
                logger.info("route_refused", extra={"chat_id": chat_id, "index": item.index,
                                                    "media": route.media, "source": route.source,
                                                    "error": exc.message[:200]})
                item.routes.pop(0)
                if item.size_bytes is None:
                    try:
                        await self._probe_after_refusal(item, route)
                    except ResultFetchError as fetch:
                        return self._unreadable(delivery, item, fetch)
                continue
            except ResultFetchError as exc:
                return self._unreadable(delivery, item, exc)
            self._record(delivery, item, message)
            return True
        if item.file.url is None:
            delivery.unavailable.append(item.index)
            return False
        await self._send_links(chat_id, [item], caption, delivery, markup)
        return True

    @staticmethod
    def _unreadable(delivery: Delivery, item: _Item, error: ResultFetchError) -> bool:
        """Note an item whose file cannot be read; return False (no message went out)."""
        logger.warning("result_unreadable", extra={"index": item.index, "error": str(error)})
        delivery.unavailable.append(item.index)
        return False

    @contextlib.asynccontextmanager
    async def _source(self, item: _Item) -> AsyncIterator[str | InputFile]:
        """Yield what to send on the item's current route: file_id, URL or a downloaded file."""
        route = item.route
        assert route is not None
        if route.source is Source.FILE_ID:
            assert item.file.file_id is not None
            yield item.file.file_id
            return
        assert item.file.url is not None
        if route.source is Source.URL:
            yield item.file.url
            return
        async with downloaded(self._http, item.file.url,
                              filename=file_name(item.file.url, item.index),
                              limit_bytes=route.max_bytes) as upload:
            yield upload

    async def _call(self, request: Any, *, uploading: bool = False) -> Any:
        """Make one Bot API call; translate a chat-level refusal into _Stop."""
        try:
            return await self._bot(request,
                                   request_timeout=UPLOAD_REQUEST_TIMEOUT_S if uploading else None)
        except TelegramForbiddenError as exc:
            raise _Stop(Outcome.BLOCKED, exc.message) from exc
        except TelegramBadRequest as exc:
            if any(text in exc.message for text in CHAT_ERRORS):
                raise _Stop(Outcome.REJECTED, exc.message) from exc
            raise

    def _record(self, delivery: Delivery, item: _Item, message: Message) -> None:
        """Note an item that reached the chat as media."""
        route = item.route
        assert route is not None
        delivery.sent.append(SentItem(item.index, message.message_id, route.media,
                                      file_of(message)))
        delivery.message_ids.append(message.message_id)

    async def _send_links(self, chat_id: int, items: list[_Item], caption: str,
                          delivery: Delivery, markup: InlineKeyboardMarkup | None) -> None:
        """Send files too big for Telegram as links in one text message."""
        lines = [item.file.url for item in items if item.file.url]
        text = "\n".join(lines)
        if caption:
            room = MAX_TEXT_UTF16 - utf16_len(text) - 2
            text = f"{clip(caption, max(room, 0))}\n\n{text}" if room > 1 else text
        message = await self._call(SendMessage(chat_id=chat_id, text=clip(text, MAX_TEXT_UTF16),
                                               reply_markup=markup))
        for item in items:
            delivery.sent.append(SentItem(item.index, message.message_id, None, None))
        delivery.message_ids.append(message.message_id)
