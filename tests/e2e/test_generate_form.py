"""Every catalog model can be ordered through the chat, and bad values are refused by rule.

One instance and the Telegram sandbox (real processes). Each model gets its own user, who
opens the model's card, presses Generate, answers every question (files uploaded, text
typed), changes one option on the card, and presses Generate on the card. The job row must
hold exactly the catalog's field names with values of their types, and the hold must equal
the price the Generate button showed. What Kie receives is `workers`' e2e.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from sandbox.telegram.control import SandboxClient
from services.billing.ledger import EntryKind, apply_entry
from services.catalog import URL_TYPES, InputField, Model, get_catalog
from services.telegram.forms import engine
from services.telegram.forms.screens import Verb
from services.telegram.forms.values import TELEGRAM_GETFILE_MAX_BYTES
from services.telegram.handlers.generate import ARG_BASE, FormPress
from services.telegram.ui import GenerateCb, ModelCb, TopUpCb
from tests.e2e.chat_user import ChatUser, kopecks
from tests.e2e.pipeline import Deployment
from tests.pg import Server

CATALOG = get_catalog()
CHAT_BASE = 880_000_000
TOP_UP_KOP = 2_000_000  # more than the dearest SKU at the default markup
# Users driven at once (each chat is serial; the bot handles chats in parallel).
PARALLEL_USERS = 24
UPLOAD_KIND = {"image_url": "photo", "video_url": "video", "audio_url": "audio"}
PROMPT = "a lighthouse on a cliff at dawn, soft light"
JOB_SQL = b"SELECT id, model_id, params, price_kop, free FROM generation_jobs WHERE user_id = %s"
HOLD_SQL = b"SELECT -balance_delta_kop FROM ledger WHERE job_id = %s AND kind = 'hold'"
FSM_SQL = b"SELECT state, data FROM fsm_states WHERE chat_id = %s"


@pytest.fixture(scope="module")
def deployment(pg_server: Server, template_db: str) -> Iterator[Deployment]:
    url = pg_server.create_database(template=template_db)
    d = Deployment(url, "polling", instances=1, env={"DISPATCH_CONCURRENCY": "64"})
    d.start()
    try:
        d.cluster.wait_leader()
        yield d
    finally:
        d.stop()
        pg_server.drop_database(url)


@pytest.fixture
async def client(deployment: Deployment) -> AsyncIterator[SandboxClient]:
    async with SandboxClient(deployment.sandbox.base_url) as c:
        yield c


@dataclass
class Ordered:
    """What the user set and saw for one model."""

    model: Model
    user_id: int
    values: dict[str, Any]
    shown_price_kop: int
    free: bool
    answer: str


def press_data(buttons: list[tuple[str, str]], verb: Verb, a: int | None = None,
               b: int | None = None) -> str:
    """Return the data of the form button with this verb (and numbers)."""
    for _, data in buttons:
        if not data.startswith("gf:"):
            continue
        press = FormPress.unpack(data)
        if press.verb is verb and a in (None, press.a) and b in (None, press.b):
            return data
    raise AssertionError(f"no {verb} button among {buttons}")


async def press(user: ChatUser, verb: Verb, a: int | None = None,
                b: int | None = None) -> dict[str, Any]:
    message_id, _, buttons = await user.screen()
    return await user.press(press_data(buttons, verb, a, b), message_id=message_id)


async def top_up(database_url: str, user_id: int) -> None:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await apply_entry(conn, user_id=user_id, kind=EntryKind.TOPUP,
                          balance_delta_kop=TOP_UP_KOP, hold_delta_kop=0,
                          idempotency_key=f"e2e-topup:{user_id}", payment_id=user_id)
        await conn.commit()


async def open_form(user: ChatUser, model: Model, database_url: str) -> None:
    """Start, get money, open the model's card as the catalog does, press its Generate."""
    await user.start()
    await top_up(database_url, user.chat_id)
    index = CATALOG.models.index(model)
    await user.press(ModelCb(model=index).pack())
    await user.press_button(GenerateCb(model=index).pack())


async def upload(user: ChatUser, f: InputField) -> str:
    kind = str(f.item_type if f.type == "array" else f.type)
    await user.upload(UPLOAD_KIND[kind])
    return kind


async def answer(user: ChatUser, model: Model, f: InputField) -> Any:
    """Give a valid value to the question being asked; return what the job should hold."""
    if f.type == "string":
        text = PROMPT[:f.max_length or len(PROMPT)]
        await user.say(text)
        return text
    assert f.type == "array" or f.type in URL_TYPES, (model.id, f.name)
    await upload(user, f)
    if f.type != "array":
        return "tg:"
    if f.max_items != 1:
        await press(user, Verb.DONE)
    return ["tg:"]


async def change_one_option(user: ChatUser, model: Model) -> tuple[str, Any] | None:
    """Change the first option of the card; return its name and the value it should get."""
    options = engine.card_fields(model)
    if not options:
        return None
    f = options[0]
    index = model.inputs.index(f)
    if f.type == "bool":
        await press(user, Verb.TOGGLE, index)
        return f.name, not bool(f.default)
    await press(user, Verb.OPEN, index)
    if f.type == "enum":
        choice = next(i for i, v in enumerate(f.values) if v != f.default)
        await press(user, Verb.PICK, index, choice)
        return f.name, f.values[choice]
    if f.type in ("int", "float"):
        value = f.min if f.min is not None else 7
        await user.say(str(value))
        return f.name, value
    if f.type == "string":
        await user.say("blurry")
        return f.name, "blurry"
    await upload(user, f)
    if f.type == "array" and f.max_items != 1:
        await press(user, Verb.DONE)
    return f.name, ["tg:"] if f.type == "array" else "tg:"


async def order(client: SandboxClient, database_url: str, model: Model, n: int) -> Ordered:
    user = ChatUser(client, CHAT_BASE + n)
    await open_form(user, model, database_url)
    values = {f.name: await answer(user, model, f) for f in engine.asked_fields(model)}
    changed = await change_one_option(user, model)
    if changed is not None:
        values[changed[0]] = changed[1]
    message_id, _, buttons = await user.screen()
    label = next(label for label, data in buttons
                 if data.startswith("gf:") and FormPress.unpack(data).verb is Verb.GO)
    free = "free" in label
    go = press_data(buttons, Verb.GO)
    await user.press(go, message_id=message_id)
    _, answer_text, _ = await user.screen()
    return Ordered(model, user.chat_id, values, 0 if free else kopecks(label), free,
                   answer_text)


def assert_typed(model: Model, params: dict[str, Any]) -> None:
    """Check every value has its field's catalog type."""
    for name, value in params.items():
        f = model.field(name)
        assert f is not None, (model.id, name)
        kind = f.item_type if f.type == "array" else f.type
        items = value if f.type == "array" else [value]
        assert isinstance(items, list) and items, (model.id, name, value)
        for item in items:
            if kind == "enum":
                assert item in f.values, (model.id, name, item)
            elif kind == "bool":
                assert isinstance(item, bool), (model.id, name, item)
            elif kind == "int":
                assert isinstance(item, int) and not isinstance(item, bool), (model.id, name)
            elif kind == "float":
                assert isinstance(item, int | float) and not isinstance(item, bool)
            else:
                assert isinstance(item, str), (model.id, name, item)
                if kind in URL_TYPES:
                    assert item.startswith("tg:") and len(item) > 3, (model.id, name, item)


def matches(expected: Any, got: Any) -> bool:
    if expected == "tg:":
        return isinstance(got, str) and got.startswith("tg:")
    if expected == ["tg:"]:
        return isinstance(got, list) and len(got) == 1 and matches("tg:", got[0])
    return bool(expected == got)


async def test_every_catalog_model_is_ordered_through_the_chat_with_its_typed_inputs(
        deployment: Deployment, client: SandboxClient) -> None:
    gate = asyncio.Semaphore(PARALLEL_USERS)

    async def one(n: int, model: Model) -> Ordered:
        async with gate:
            return await order(client, deployment.database_url, model, n)

    results = await asyncio.gather(*(one(n, m) for n, m in enumerate(CATALOG.models)))
    assert len(results) == len(CATALOG) == 73
    async with await psycopg.AsyncConnection.connect(deployment.database_url) as conn:
        for r in results:
            rows = await (await conn.execute(JOB_SQL, (r.user_id,))).fetchall()
            assert len(rows) == 1, (r.model.id, rows, r.answer)
            job_id, model_id, params, price_kop, free = rows[0]
            assert model_id == r.model.id
            expected_names = {f.name for f in r.model.inputs
                              if f.required or f.default is not None} | set(r.values)
            assert set(params) == expected_names, r.model.id
            assert_typed(r.model, params)
            for name, value in r.values.items():
                assert matches(value, params[name]), (r.model.id, name, value, params[name])
            assert (price_kop, free) == (r.shown_price_kop, r.free), r.model.id
            hold = await (await conn.execute(HOLD_SQL, (job_id,))).fetchone()
            assert (hold[0] if hold else 0) == r.shown_price_kop, r.model.id
            # The card became the job's status message (the engine may have moved it on).
            assert any(stage in r.answer for stage in ("queued", "generating")), (
                r.model.id, r.answer)


async def fsm(database_url: str, chat_id: int) -> tuple[Any, ...] | None:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        return await (await conn.execute(FSM_SQL, (chat_id,))).fetchone()


async def refused(user: ChatUser, database_url: str, act: Any, rule: str) -> None:
    """Do act; the bot must name the rule and the form must not change."""
    before = await fsm(database_url, user.chat_id)
    said = await act()
    assert rule in str(said.get("text") or ""), (rule, said)
    assert await fsm(database_url, user.chat_id) == before


async def test_a_bad_value_of_each_input_type_is_refused_naming_the_rule(
        deployment: Deployment, client: SandboxClient) -> None:
    url = deployment.database_url
    chat = CHAT_BASE + 1000

    def user_for(offset: int) -> ChatUser:
        return ChatUser(client, chat + offset)

    # string: the prompt's length.
    z = user_for(0)
    await open_form(z, CATALOG["z-image"], url)
    await refused(z, url, lambda: z.say("x" * 1001), "at most 1000 characters")

    # enum (typed) and bool (a press that is not a bool's) on the card of kling 2.6.
    kling = CATALOG["kling-2.6/text-to-video"]
    k = user_for(1)
    await open_form(k, kling, url)
    await k.say(PROMPT)
    duration = kling.inputs.index(kling.field("duration"))  # type: ignore[arg-type]
    # A bool is a toggle on the card: the only bad "value" is a Yes press for another input.
    message_id, _, buttons = await k.screen()
    card = FormPress.unpack(press_data(buttons, Verb.GO)).card
    forged = FormPress(verb=Verb.YES, card=card, arg=duration * ARG_BASE).pack()
    await refused(k, url, lambda: k.press(forged, message_id=message_id), "out of date")
    await press(k, Verb.OPEN, duration)
    await refused(k, url, lambda: k.say("7"), "Duration must be 5 or 10 seconds")

    # int and float: typed, range-checked.
    wan = CATALOG["wan/2-2-a14b-speech-to-video-turbo"]
    w = user_for(2)
    await open_form(w, wan, url)
    await w.upload("photo")
    await press(w, Verb.DONE)
    await w.upload("audio")
    await press(w, Verb.DONE)
    await w.say(PROMPT)
    await press(w, Verb.OPEN, wan.inputs.index(wan.field("num_frames")))  # type: ignore[arg-type]
    await refused(w, url, lambda: w.say("500"), "must be from 40 to 120")
    await press(w, Verb.BACK)
    await press(w, Verb.OPEN, wan.inputs.index(wan.field("shift")))  # type: ignore[arg-type]
    await refused(w, url, lambda: w.say("a lot"), "must be a number")

    # image (array): a video is not an image, a file over 20 MB cannot be fetched, and
    # Done needs a file first.
    topaz = CATALOG["topaz/image-upscale"]
    t = user_for(3)
    await open_form(t, topaz, url)
    await refused(t, url, lambda: t.upload("video"), "needs a photo or an image file")
    big = {"update": {"message": {
        "message_id": 1, "date": 1_700_000_000, "chat": {"id": t.chat_id, "type": "private"},
        "from": {"id": t.chat_id, "is_bot": False, "first_name": "T", "language_code": "en"},
        "photo": [{"file_id": "big-photo", "file_unique_id": "big", "width": 4000,
                   "height": 3000, "file_size": TELEGRAM_GETFILE_MAX_BYTES + 5 * 2**20}]}}}
    await refused(t, url, lambda: t.upload("raw", **big), "This file is 25 MB")
    message_id, _, buttons = await t.screen()
    card = FormPress.unpack(press_data(buttons, Verb.CANCEL)).card
    done = FormPress(verb=Verb.DONE, card=card).pack()
    await refused(t, url, lambda: t.press(done, message_id=message_id),
                  "needs at least one file")

    # video and audio: the wrong kind of file.
    s = user_for(4)
    await open_form(s, CATALOG["sora-watermark-remover"], url)
    await refused(s, url, lambda: s.upload("photo"), "needs a video")
    a = user_for(5)
    await open_form(a, CATALOG["elevenlabs/audio-isolation"], url)
    await refused(a, url, lambda: a.upload("document", content="not audio",
                                          file_name="notes.txt"),
                  "needs an audio file or a voice message")


async def test_plain_text_at_the_menu_generates_with_the_free_default_in_one_tap(
        deployment: Deployment, client: SandboxClient) -> None:
    url = deployment.database_url
    user = ChatUser(client, CHAT_BASE + 2000)
    await user.start()
    offer = await user.say("a red fox in the snow")
    assert "Z-Image" in str(offer["text"]) and "free" in str(offer["text"])
    message_id, _, buttons = await user.screen()
    go = press_data(buttons, Verb.GO)
    await user.press(go, message_id=message_id)
    # A double tap of the same card (and a re-run of its update) finds the job it made.
    again = await user.press(go, message_id=message_id)
    assert again["text"] == "Already queued."
    async with await psycopg.AsyncConnection.connect(url) as conn:
        rows = await (await conn.execute(JOB_SQL, (user.chat_id,))).fetchall()
    assert [(r[1], r[2]) for r in rows] == [
        ("z-image", {"prompt": "a red fox in the snow", "aspect_ratio": "1:1"})]
    # The next text uses the last model again.
    await user.say("a blue fox")
    _, text, _ = await user.screen()
    assert "Z-Image" in text


async def test_generate_without_enough_money_names_the_shortfall_and_offers_a_top_up(
        deployment: Deployment, client: SandboxClient) -> None:
    user = ChatUser(client, CHAT_BASE + 2001)
    model = CATALOG["seedream/4.5-text-to-image"]
    await user.start()
    index = CATALOG.models.index(model)
    await user.press(ModelCb(model=index).pack())
    await user.press_button(GenerateCb(model=index).pack())
    await user.say(PROMPT)
    message_id, text, buttons = await user.screen()
    assert "Your balance is short by 10.22 ₽." in text
    await user.press(press_data(buttons, Verb.GO), message_id=message_id)
    _, said, buttons = await user.screen()
    assert said == "Not enough money: 10.22 ₽ more is needed."
    assert any(data == TopUpCb().pack() for _, data in buttons)
    async with await psycopg.AsyncConnection.connect(deployment.database_url) as conn:
        assert await (await conn.execute(JOB_SQL, (user.chat_id,))).fetchall() == []
