"""The playground's JSON API against the Telegram sandbox, the test playing the bot's part
through the Bot API (no browser, no bot process)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from sandbox.common.media import make_png
from sandbox.harness.env import BOT_TOKEN
from tests.e2e.playground_stand import CHAT_ID, Stand, open_stand


@pytest.fixture
async def stand() -> AsyncIterator[Stand]:
    async with open_stand() as opened:
        yield opened


async def test_sent_text_reaches_the_bot_as_a_message_from_the_person(stand: Stand) -> None:
    response = await stand.page.post("/api/send", json={"text": "/start"})
    assert response.status == 200
    [update] = await stand.updates()
    message = update["message"]
    assert message["text"] == "/start"
    assert message["chat"]["id"] == CHAT_ID
    assert message["from"]["first_name"] == "You"
    assert message["from"]["language_code"] == "en"


async def test_bad_input_is_refused_with_a_reason_and_sends_nothing(stand: Stand) -> None:
    for path, body in (("/api/send", {"text": "  "}), ("/api/send", {"text": 5}),
                       ("/api/press", {"message_id": "1", "data": "x"}),
                       ("/api/press", {"message_id": 1, "data": ""})):
        response = await stand.page.post(path, json=body)
        assert response.status == 400
        assert (await response.json())["error"]
    form = aiohttp.FormData({"kind": "sticker"})
    form.add_field("file", b"x", filename="a.webp")
    response = await stand.page.post("/api/upload", data=form)
    assert response.status == 400
    assert "kind must be one of" in (await response.json())["error"]
    assert await stand.updates() == []


async def test_updates_carry_each_message_as_it_is_now_with_entities(stand: Stand) -> None:
    await stand.page.post("/api/send", json={"text": "hi"})
    sent = await stand.bot("sendMessage", chat_id=CHAT_ID, parse_mode="HTML",
                           text="<b>Pick</b> a <a href='https://kie.ai'>model</a> &lt;3",
                           reply_markup={"inline_keyboard": [[
                               {"text": "Z-Image", "callback_data": "m:1"}]]})
    response = await stand.page.get("/api/updates", params={"after_seq": 0, "seen": 0})
    body = await response.json()
    [item] = body["items"]
    assert body["total"] == 1
    assert item["method"] == "sendMessage"
    assert item["message_id"] == sent["message_id"]
    message = item["message"]
    assert message["text"] == "Pick a model <3"
    assert {e["type"] for e in message["entities"]} == {"bold", "text_link"}
    assert message["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "m:1"


async def test_an_edit_is_delivered_with_the_edited_message(stand: Stand) -> None:
    await stand.page.post("/api/send", json={"text": "hi"})
    sent = await stand.bot("sendMessage", chat_id=CHAT_ID, text="queued")
    first = await (await stand.page.get("/api/updates")).json()
    await stand.bot("editMessageText", chat_id=CHAT_ID, message_id=sent["message_id"],
                    text="done")
    after = first["items"][-1]["seq"]
    response = await stand.page.get("/api/updates",
                                    params={"after_seq": after, "seen": first["total"]})
    [edit] = (await response.json())["items"]
    assert edit["method"] == "editMessageText"
    assert edit["message"]["text"] == "done"
    assert edit["message"]["edit_date"]


async def test_a_press_is_a_callback_query_on_that_message(stand: Stand) -> None:
    await stand.page.post("/api/send", json={"text": "hi"})
    sent = await stand.bot("sendMessage", chat_id=CHAT_ID, text="Pick",
                           reply_markup={"inline_keyboard": [[{"text": "A",
                                                                "callback_data": "a"}]]})
    await stand.updates()
    response = await stand.page.post("/api/press",
                                     json={"message_id": sent["message_id"], "data": "a"})
    assert response.status == 200
    [update] = await stand.updates()
    query = update["callback_query"]
    assert query["data"] == "a"
    assert query["message"]["message_id"] == sent["message_id"]
    assert query["from"]["id"] == CHAT_ID


async def test_an_uploaded_photo_reaches_the_bot_byte_for_byte(stand: Stand) -> None:
    picture = make_png(40, 30, (10, 200, 30))
    form = aiohttp.FormData({"kind": "photo", "caption": "make it anime"})
    form.add_field("file", picture, filename="me.png", content_type="image/png")
    assert (await stand.page.post("/api/upload", data=form)).status == 200
    [update] = await stand.updates()
    message = update["message"]
    assert message["caption"] == "make it anime"
    [size] = message["photo"]
    assert (size["width"], size["height"]) == (40, 30)
    found = await stand.bot("getFile", file_id=size["file_id"])
    url = f"{stand.sandbox.base_url}/file/bot{BOT_TOKEN}/{found['file_path']}"
    async with stand.http.get(url) as response:
        assert await response.read() == picture


async def test_an_uploaded_document_keeps_its_name_and_type(stand: Stand) -> None:
    form = aiohttp.FormData({"kind": "document"})
    form.add_field("file", b"%PDF-1.4 tiny", filename="brief.pdf",
                   content_type="application/pdf")
    assert (await stand.page.post("/api/upload", data=form)).status == 200
    [update] = await stand.updates()
    document = update["message"]["document"]
    assert document["file_name"] == "brief.pdf"
    assert document["mime_type"] == "application/pdf"


async def test_a_photo_that_is_not_a_picture_is_refused(stand: Stand) -> None:
    form = aiohttp.FormData({"kind": "photo"})
    form.add_field("file", b"not a picture", filename="x.png")
    response = await stand.page.post("/api/upload", data=form)
    assert response.status == 400
    assert "PNG or JPEG" in (await response.json())["error"]
    assert await stand.updates() == []


async def test_a_file_the_bot_sent_is_served_from_the_sandbox(stand: Stand) -> None:
    await stand.page.post("/api/send", json={"text": "hi"})
    picture = make_png(8, 8, (1, 2, 3))
    sent = await stand.bot_upload("sendPhoto", "photo", picture, "r.png")
    file_id = sent["photo"][-1]["file_id"]
    response = await stand.page.get(f"/api/file/{file_id}")
    assert response.status == 200
    assert await response.read() == picture
    assert (await stand.page.get("/api/file/unknown_id")).status == 404
    assert (await stand.page.get("/api/file/bad%20id")).status == 400


async def test_the_bot_token_never_reaches_the_page(stand: Stand) -> None:
    await stand.page.post("/api/send", json={"text": "hi"})
    await stand.bot_upload("sendDocument", "document", b"abc", "a.txt")
    secret = BOT_TOKEN.split(":", 1)[1]
    for path in ("/", "/api/me", "/api/updates"):
        text = await (await stand.page.get(path)).text()
        assert secret not in text, path


async def test_a_file_sent_by_a_local_url_is_served_from_that_url(stand: Stand) -> None:
    picture = make_png(12, 9, (9, 9, 9))

    async def result(request: web.Request) -> web.Response:
        return web.Response(body=picture, content_type="image/png")

    app = web.Application()
    app.router.add_get("/r/result.png", result)
    async with TestServer(app, host="127.0.0.1") as origin:
        await stand.page.post("/api/send", json={"text": "hi"})
        local = await stand.bot("sendPhoto", chat_id=CHAT_ID,
                                photo=str(origin.make_url("/r/result.png")))
        remote = await stand.bot("sendPhoto", chat_id=CHAT_ID,
                                 photo="https://cdn.example.test/elsewhere.png")
        await stand.page.get("/api/updates")  # the page learns where the files live
        response = await stand.page.get(f"/api/file/{local['photo'][-1]['file_id']}")
        assert response.status == 200
        assert await response.read() == picture
        assert (await stand.page.get(f"/api/file/{remote['photo'][-1]['file_id']}")).status == 404
