"""The playground's web app: a Telegram-like page and the small JSON API it talks to.

The page (static/) never talks to the sandbox itself and never sees the bot token; this app
stands between them:

    GET  /                       the page; /static/... its script and style
    GET  /api/me                 who the bot is (getMe) and who "you" are
    GET  /api/updates?after_seq=N&seen=T
                                 long poll (at most UPDATES_WAIT_S): the bot's actions in the
                                 chat after seq N, once the chat log holds more than T; each
                                 send or edit carries `message`, the message as it is now
                                 (text and its entities, media, inline keyboard)
    POST /api/send   {text}      a text message from you
    POST /api/press  {message_id, data}
                                 a tap on an inline button: a callback query
    POST /api/upload multipart   kind (photo, video, audio, document), file, caption: a message
                                 from you carrying that file
    GET  /api/file/{file_id}     a file the bot sent, read from the sandbox's file store; a
                                 file the bot sent by URL (the sandbox keeps no bytes of those)
                                 is read from that URL when it is on this machine (the Kie
                                 sandbox's results), never from another host

Bad input gets a 400 with `error` saying which rule it broke, and nothing is sent.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp
import orjson
from aiohttp import web

from sandbox.telegram import SandboxClient, SandboxError, SandboxTimeout
from sandbox.telegram.media import is_loopback_host, url_host

logger = logging.getLogger(__name__)

STATIC_DIR: Final = Path(__file__).with_name("static")
UPDATES_WAIT_S: Final = 20.0  # one long poll of the page; under browsers' idle timeouts
MAX_UPLOAD_BYTES: Final = 20 * 1024 * 1024  # what a bot may download of a user's file
MAX_TEXT_CHARS: Final = 4096  # Telegram's message length
UPLOAD_KINDS: Final = frozenset({"photo", "video", "audio", "document"})
FILE_ID: Final = re.compile(r"^[A-Za-z0-9_-]{1,200}$")
# Bot actions that show or change a message (the page renders the message's current state).
MESSAGE_METHODS: Final = frozenset({
    "sendMessage", "sendPhoto", "sendVideo", "sendAudio", "sendDocument", "sendAnimation",
    "sendVoice", "sendMediaGroup", "copyMessage", "forwardMessage", "editMessageText",
    "editMessageCaption", "editMessageReplyMarkup", "editMessageMedia"})


class BadInput(web.HTTPBadRequest):
    """Refuse a request from the page, saying which rule it broke."""

    def __init__(self, reason: str) -> None:
        super().__init__(text=orjson.dumps({"ok": False, "error": reason}).decode(),
                         content_type="application/json")


@dataclass(frozen=True)
class Person:
    """The one user of the playground chat."""

    chat_id: int
    first_name: str
    language: str

    def fields(self) -> dict[str, Any]:
        """Return the inject fields that say who sends."""
        return {"first_name": self.first_name, "language_code": self.language}


SANDBOX_KEY: Final = web.AppKey("sandbox", SandboxClient)
HTTP_KEY: Final = web.AppKey("http", aiohttp.ClientSession)


def make_app(telegram_url: str, bot_token: str, person: Person) -> web.Application:
    """Return the playground app for one chat with the bot behind `bot_token`."""
    app = web.Application(client_max_size=MAX_UPLOAD_BYTES + 1024 * 1024)
    api = _Api(telegram_url, bot_token, person)
    app.cleanup_ctx.append(api.sessions)
    app.router.add_get("/", _index)
    app.router.add_static("/static/", STATIC_DIR)
    app.router.add_get("/api/me", api.me)
    app.router.add_get("/api/updates", api.updates)
    app.router.add_post("/api/send", api.send)
    app.router.add_post("/api/press", api.press)
    app.router.add_post("/api/upload", api.upload)
    app.router.add_get("/api/file/{file_id}", api.file)
    return app


async def _index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html")


class _Api:
    """The JSON endpoints; one control client and one Bot API session for all requests."""

    def __init__(self, telegram_url: str, bot_token: str, person: Person) -> None:
        self._telegram_url = telegram_url
        self._bot_base = f"{telegram_url}/bot{bot_token}"
        self._file_base = f"{telegram_url}/file/bot{bot_token}"
        self._person = person
        self._urls: dict[str, str] = {}  # file_id -> the loopback URL the bot sent it by
        self._http: aiohttp.ClientSession | None = None
        self._control: SandboxClient | None = None

    async def sessions(self, app: web.Application) -> Any:
        """Open the HTTP sessions for the app's life (an aiohttp cleanup context)."""
        async with aiohttp.ClientSession() as http, \
                SandboxClient(self._telegram_url, timeout_s=UPDATES_WAIT_S + 10) as control:
            self._http, self._control = http, control
            yield

    @property
    def control(self) -> SandboxClient:
        assert self._control is not None, "the app is not running"
        return self._control

    @property
    def http(self) -> aiohttp.ClientSession:
        assert self._http is not None, "the app is not running"
        return self._http

    async def _bot_api(self, method: str, **params: str) -> Any:
        """Call the Bot API as the bot; return its result, or None when it refuses."""
        async with self.http.get(f"{self._bot_base}/{method}", params=params) as response:
            body = await response.json()
        return body.get("result") if body.get("ok") else None

    async def me(self, request: web.Request) -> web.Response:
        """Return the bot's name and the person's."""
        bot = await self._bot_api("getMe") or {}
        return web.json_response({
            "ok": True, "bot": {"first_name": bot.get("first_name", "bot"),
                                "username": bot.get("username", "")},
            "you": {"first_name": self._person.first_name, "chat_id": self._person.chat_id}})

    async def updates(self, request: web.Request) -> web.Response:
        """Long-poll the bot's actions in the chat after `after_seq`."""
        after_seq = _int_query(request, "after_seq")
        seen = _int_query(request, "seen")
        chat_id = self._person.chat_id
        try:
            await self.control.wait(chat_id=chat_id, chat_at_least=seen + 1,
                                    timeout_s=UPDATES_WAIT_S)
        except SandboxTimeout:
            return web.json_response({"ok": True, "items": [], "total": seen})
        chat = await self.control.chat(chat_id, after_seq=after_seq)
        current: dict[int, Mapping[str, Any] | None] = {}
        items = []
        for entry in chat["messages"]:
            self._remember_url(entry.get("media"))
            item = dict(entry)
            message_id = entry.get("message_id")
            if entry.get("method") in MESSAGE_METHODS and isinstance(message_id, int):
                if message_id not in current:
                    current[message_id] = await self._message(chat_id, message_id)
                item["message"] = current[message_id]
            items.append(item)
        return web.json_response({"ok": True, "items": items, "total": chat["total"]})

    def _remember_url(self, media: Any) -> None:
        """Remember where a file sent by URL lives, when that is on this machine."""
        url = media.get("url") if isinstance(media, dict) else None
        if isinstance(url, str) and media.get("file_id") and is_loopback_host(url_host(url)):
            self._urls[str(media["file_id"])] = url

    async def _message(self, chat_id: int, message_id: int) -> Mapping[str, Any] | None:
        """Return a message as it is now, or None when it was deleted."""
        try:
            return await self.control.message(chat_id, message_id)
        except SandboxError:
            return None

    async def send(self, request: web.Request) -> web.Response:
        """Send the person's text message."""
        body = await _json_body(request)
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            raise BadInput("text must be a non-empty string")
        if len(text) > MAX_TEXT_CHARS:
            raise BadInput(f"text must be at most {MAX_TEXT_CHARS} characters")
        await self._inject({"kind": "message", "text": text})
        return web.json_response({"ok": True})

    async def press(self, request: web.Request) -> web.Response:
        """Tap an inline button of a bot message."""
        body = await _json_body(request)
        message_id, data = body.get("message_id"), body.get("data")
        if isinstance(message_id, bool) or not isinstance(message_id, int) or message_id <= 0:
            raise BadInput("message_id must be a positive integer")
        if not isinstance(data, str) or not data:
            raise BadInput("data must be a non-empty string")
        await self._inject({"kind": "callback", "data": data, "message_id": message_id})
        return web.json_response({"ok": True})

    async def upload(self, request: web.Request) -> web.Response:
        """Send a message from the person carrying an uploaded file."""
        if not request.content_type.startswith("multipart/"):
            raise BadInput("send the file as multipart/form-data")
        form = await request.post()
        kind, file, caption = form.get("kind"), form.get("file"), form.get("caption")
        if kind not in UPLOAD_KINDS:
            raise BadInput(f"kind must be one of {', '.join(sorted(UPLOAD_KINDS))}")
        if not isinstance(file, web.FileField):
            raise BadInput("file is missing")
        data = file.file.read()
        if not data:
            raise BadInput("the file is empty")
        if len(data) > MAX_UPLOAD_BYTES:
            raise BadInput(f"the file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB")
        item: dict[str, Any] = {"kind": kind,
                                "content_base64": base64.b64encode(data).decode()}
        if kind != "photo":
            item["file_name"] = file.filename or kind
            if file.content_type and file.content_type != "application/octet-stream":
                item["mime_type"] = file.content_type
        if isinstance(caption, str) and caption.strip():
            item["caption"] = caption
        await self._inject(item)
        return web.json_response({"ok": True})

    async def _inject(self, item: dict[str, Any]) -> None:
        """Inject one item as the person; a refusal of the sandbox becomes a 400."""
        try:
            await self.control.inject([{**item, "chat_id": self._person.chat_id,
                                        **self._person.fields()}])
        except SandboxError as exc:
            raise BadInput(str(exc)) from exc

    async def file(self, request: web.Request) -> web.StreamResponse:
        """Serve a file of the chat from the sandbox's file store."""
        file_id = request.match_info["file_id"]
        if not FILE_ID.match(file_id):
            raise BadInput("not a file id")
        found = await self._bot_api("getFile", file_id=file_id)
        if not found or not found.get("file_path"):
            raise web.HTTPNotFound(text="no such file")
        for url in (f"{self._file_base}/{found['file_path']}", self._urls.get(file_id)):
            if url is None:
                continue
            async with self.http.get(url) as upstream:
                if upstream.status == 200:
                    return web.Response(body=await upstream.read(), headers={
                        "Content-Type": upstream.headers.get("Content-Type",
                                                             "application/octet-stream"),
                        "Cache-Control": "max-age=3600"})
        raise web.HTTPNotFound(text="no bytes for this file (sent by a URL not on this machine)")


def _int_query(request: web.Request, name: str) -> int:
    """Read a non-negative integer query parameter (0 when absent)."""
    raw = request.query.get(name, "0")
    if not raw.isdigit():
        raise BadInput(f"{name} must be a non-negative integer")
    return int(raw)


async def _json_body(request: web.Request) -> Mapping[str, Any]:
    """Return the request's JSON object."""
    try:
        body = await request.json()
    except ValueError as exc:
        raise BadInput("the body must be JSON") from exc
    if not isinstance(body, dict):
        raise BadInput("the body must be a JSON object")
    return body
