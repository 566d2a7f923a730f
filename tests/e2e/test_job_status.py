"""A job's status message and its result's buttons, through the chat, the engine and both
sandboxes in one process: the confirm card becomes the status message, edited to generating
and then to the final stage; the result is a new message with its four buttons, each leading
to its screen.

Kie's tasks run "forever" (an hour) and the test ends them through the sandbox's control API,
so every stage is waited for as a condition, never timed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

import services.delivery.status as status_board
import services.generation.status_messages as status_messages
from config import load_settings
from sandbox.harness.generation import GenerationStack, StackOptions
from sandbox.kie import KieSandboxClient, KieSandboxConfig
from sandbox.telegram import SandboxClient
from services.delivery.status import StatusBoard
from services.generation import JobLimits
from services.generation.status_messages import JobStatusMessages
from services.generation.store import StatusShown
from services.telegram.bot import create_bot
from services.telegram.forms.screens import Verb
from services.telegram.handlers.generate import FormPress
from services.telegram.ui import ResultAct, ResultCb
from tests.e2e.chat import ChatBot, Person, Screen
from tests.helpers import eventually, make_env

HOUR_S = 3_600.0
PROMPT = "a red fox in the snow"
JOB_SQL = b"""
SELECT id, status, status_message_id, status_shown, delivered_at IS NOT NULL
  FROM generation_jobs WHERE user_id = %s ORDER BY id
"""
SET_SHOWN_SQL = b"UPDATE generation_jobs SET status_shown = %s WHERE id = %s"


@dataclass
class Product:
    """The chat and the engine leading one database, with both sandboxes' control APIs."""

    stack: GenerationStack
    chat: ChatBot
    kie: KieSandboxClient
    telegram: SandboxClient

    async def jobs(self, user_id: int) -> list[tuple[Any, ...]]:
        assert self.stack.pool is not None
        async with self.stack.pool.connection() as conn:
            cur = await conn.execute(JOB_SQL, (user_id,))
            return await cur.fetchall()

    async def text_of(self, chat_id: int, message_id: int) -> str:
        message = await self.telegram.message(chat_id, message_id)
        return str(message.get("text") or message.get("caption") or "")

    async def task_id(self) -> str:
        """Return the id of the one running Kie task, once Kie has it."""
        async def running() -> list[dict[str, Any]]:
            return [t for t in await self.kie.tasks() if t["state"] not in ("success", "fail")]
        async def started() -> bool:
            return bool(await running())
        await eventually(started, what="a running Kie task")
        return str((await running())[0]["task_id"])


@pytest.fixture
async def product(database_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Product]:
    # Edits 50 ms apart instead of 3 s: the order of the stages is what is checked.
    monkeypatch.setattr(status_board, "STATUS_EDIT_INTERVAL_S", 0.05)
    # The engine's refresher runs once at the start only: the tests call refresh() themselves.
    monkeypatch.setattr(status_messages, "REFRESH_INTERVAL_S", HOUR_S)
    kie = KieSandboxConfig()
    kie.update({"task_duration_s": HOUR_S})
    options = StackOptions(kie=kie, rate_limited=False,
                           limits=JobLimits(max_active_jobs=2, free_daily_quota=5))
    async with GenerationStack(database_url, options) as stack, \
            KieSandboxClient(stack.kie_url) as kie_control, \
            SandboxClient(stack.telegram_url) as telegram:
        assert stack.pool is not None and stack.engine is not None
        assert stack.telegram is not None
        bot = create_bot(load_settings(make_env(database_url,
                                                TELEGRAM_API_BASE=stack.telegram_url)),
                         leading=lambda: True)
        chat = ChatBot(stack.pool, bot, stack.telegram, telegram, leadership=stack.leadership,
                       status_board=stack.engine.status.board)
        await chat.start()
        try:
            yield Product(stack, chat, kie_control, telegram)
        finally:
            await chat.stop()
            await bot.session.close()


def go_button(screen: Screen) -> str:
    """Return the Generate button of a form card."""
    for data in screen.data():
        if data.startswith("gf:") and FormPress.unpack(data).verb is Verb.GO:
            return data
    raise AssertionError(f"no Generate on {screen.text!r}")


async def confirm(product: Product, person: Person) -> tuple[Screen, int]:
    """Type a prompt at the menu (the free default model's card), press Generate; return the
    card and the job's id."""
    await person.send("/start")
    card = await person.send(PROMPT)
    await person.press(go_button(card), message_id=card.message_id)
    [(job_id, *_)] = await product.jobs(person.chat_id)
    return card, int(job_id)


async def shows(product: Product, chat_id: int, message_id: int, start: str) -> None:
    """Wait until a message's text starts with `start`."""
    async def showing() -> bool:
        return (await product.text_of(chat_id, message_id)).startswith(start)
    await eventually(showing, what=f"message {message_id} showing {start!r}")


async def result_message(product: Product, chat_id: int) -> dict[str, Any]:
    """Return the delivered result (the chat's photo), once it is there."""
    async def photos() -> list[dict[str, Any]]:
        return [e for e in await product.telegram.chat_messages(chat_id)
                if e["method"] == "sendPhoto"]
    async def arrived() -> bool:
        return bool(await photos())
    await eventually(arrived, what="the result photo")
    [sent] = await photos()
    return await product.telegram.message(chat_id, int(sent["message_id"]))


def buttons_of(message: dict[str, Any]) -> list[str]:
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    return [b["callback_data"] for row in rows for b in row]


async def delivered(product: Product, person: Person) -> tuple[dict[str, Any], int, int]:
    """Confirm a job and let Kie finish it; return the result, the card and the job id."""
    card, job_id = await confirm(product, person)
    await product.kie.complete(await product.task_id())
    result = await result_message(product, person.chat_id)
    # The status message's final edit comes after the result: wait for it, so a press that
    # follows reads its own answer, not that edit.
    await shows(product, person.chat_id, card.message_id, "✅ ")
    return result, card.message_id, job_id


async def test_the_card_becomes_the_status_message_edited_to_generating_then_done(
        product: Product) -> None:
    person = product.chat.person(7001)
    card, job_id = await confirm(product, person)
    [(_, _, status_message_id, shown, _)] = await product.jobs(person.chat_id)
    # Stored with the job; the loops may already have moved it on (the log below has it all).
    assert status_message_id == card.message_id and shown in ("queued", "generating")

    await shows(product, person.chat_id, card.message_id, "⚙️ Z-Image: generating…")
    await product.kie.complete(await product.task_id())
    result = await result_message(product, person.chat_id)
    await shows(product, person.chat_id, card.message_id, "✅ Z-Image: done in ")

    assert result["message_id"] != card.message_id  # the result is a new message
    status = await product.telegram.message(person.chat_id, card.message_id)
    assert buttons_of(status) == [ResultCb(act=ResultAct.MENU, job=job_id).pack()]
    assert buttons_of(result) == [ResultCb(act=act, job=job_id).pack() for act in ResultAct]
    edits = [e for e in await person.log() if e["method"] == "editMessageText"
             and e["message_id"] == card.message_id]
    stages = [e["text"].split(":")[1].split()[0].rstrip(".") for e in edits]
    assert [s for i, s in enumerate(stages) if i == 0 or stages[i - 1] != s] == [
        "queued", "generating…", "done"]

    async def recorded() -> bool:
        return (await product.jobs(person.chat_id))[0][3] == "done"
    await eventually(recorded, what="the final stage recorded")


async def test_a_failure_shows_its_reason_on_the_status_message_and_offers_repeat_and_menu(
        product: Product) -> None:
    person = product.chat.person(7002, language="ru")
    card, job_id = await confirm(product, person)
    await product.kie.fail(await product.task_id(), fail_code="500",
                           fail_msg="content flagged by moderation")
    await shows(product, person.chat_id, card.message_id, "❌ Z-Image: не получилось.")
    text = await product.text_of(person.chat_id, card.message_id)
    assert "правилами" in text and "Деньги не списаны" in text

    async def notice() -> list[dict[str, Any]]:
        return [e for e in await person.log() if e["method"] == "sendMessage"
                and e["message_id"] > card.message_id]
    async def noticed() -> bool:
        return bool(await notice())
    await eventually(noticed, what="the failure notice")
    [sent] = await notice()
    message = await product.telegram.message(person.chat_id, int(sent["message_id"]))
    assert buttons_of(message) == [ResultCb(act=ResultAct.REPEAT, job=job_id).pack(),
                                   ResultCb(act=ResultAct.MENU, job=job_id).pack()]


async def test_each_result_button_opens_its_screen_below_the_result(product: Product) -> None:
    person = product.chat.person(7003)
    result, _, job_id = await delivered(product, person)
    at = int(result["message_id"])

    repeat = await person.press(ResultCb(act=ResultAct.REPEAT, job=job_id).pack(),
                                message_id=at)
    assert repeat.message_id > at and repeat.text.startswith("Z-Image")
    assert PROMPT in repeat.text and go_button(repeat)

    change = await person.press(ResultCb(act=ResultAct.CHANGE, job=job_id).pack(),
                                message_id=at)
    assert change.message_id > repeat.message_id
    assert change.text.startswith("Z-Image: send the Prompt")
    back = next(d for d in change.data() if d.startswith("gf:")
                and FormPress.unpack(d).verb is Verb.BACK)
    kept = await person.press(back, message_id=change.message_id)
    assert PROMPT in kept.text and go_button(kept)  # Back keeps the prompt: the card

    other = await person.press(ResultCb(act=ResultAct.OTHER, job=job_id).pack(),
                               message_id=at)
    assert other.message_id > change.message_id
    assert other.text.startswith("🖼 Images")
    assert any(d.startswith("mdl:") for d in other.data())

    menu = await person.press(ResultCb(act=ResultAct.MENU, job=job_id).pack(), message_id=at)
    assert menu.message_id > other.message_id and {"help", "bal", "hist:0"} <= set(menu.data())
    # The result itself is untouched: still the photo with its buttons.
    assert buttons_of(await product.telegram.message(person.chat_id, at)) == buttons_of(result)


async def test_a_double_tap_of_repeat_and_of_its_generate_makes_one_card_and_one_job(
        product: Product) -> None:
    person = product.chat.person(7004)
    result, _, job_id = await delivered(product, person)
    at = int(result["message_id"])
    data = ResultCb(act=ResultAct.REPEAT, job=job_id).pack()
    card = await person.press(data, message_id=at)
    again = await person.press(data, message_id=at)
    assert again.message_id == card.message_id  # no second card
    go = go_button(card)
    await person.press(go, message_id=card.message_id)
    await person.press(go, message_id=card.message_id)
    jobs = await product.jobs(person.chat_id)
    assert len(jobs) == 2  # the first and one repeat
    assert jobs[1][2] == card.message_id  # the repeat's card is its status message


async def test_a_strangers_press_on_a_result_button_is_outdated_and_shows_the_menu(
        product: Product) -> None:
    owner = product.chat.person(7005)
    _, _, job_id = await delivered(product, owner)
    stranger = product.chat.person(7006)
    await stranger.send("/start")
    screen = await stranger.press(ResultCb(act=ResultAct.REPEAT, job=job_id).pack())
    assert "outdated" in screen.text.lower() and {"help", "bal", "hist:0"} <= set(screen.data())
    assert len(await product.jobs(7006)) == 0


async def test_a_deleted_status_message_is_forgotten_and_the_result_still_arrives(
        product: Product) -> None:
    person = product.chat.person(7007)
    card, _ = await confirm(product, person)
    await product.chat.bot.delete_message(person.chat_id, card.message_id)
    await product.kie.complete(await product.task_id())
    result = await result_message(product, person.chat_id)
    assert len(buttons_of(result)) == 4

    async def gone() -> bool:
        return (await product.jobs(person.chat_id))[0][3] == "gone"
    await eventually(gone, what="the status message forgotten")
    [(_, status, _, _, was_delivered)] = await product.jobs(person.chat_id)
    assert (status, was_delivered) == ("succeeded", True)


async def test_a_new_leader_makes_the_final_edit_a_dead_one_left_and_refreshes_running_jobs(
        product: Product) -> None:
    first = product.chat.person(7008)
    _, card_id, job_id = await delivered(product, first)
    await shows(product, first.chat_id, card_id, "✅ Z-Image: done")
    assert product.stack.pool is not None and product.stack.leadership is not None

    async def recorded() -> bool:
        return (await product.jobs(first.chat_id))[0][3] == "done"
    await eventually(recorded, what="the final stage recorded")
    # As if the leader died after delivering, before its final edit: the stage is open
    # again and the message still says "generating".
    await product.chat.bot.edit_message_text("⚙️ Z-Image: generating…", chat_id=first.chat_id,
                                             message_id=card_id)
    async with product.stack.pool.connection() as conn:
        await conn.execute(SET_SHOWN_SQL, (str(StatusShown.GENERATING), job_id))
    second = product.chat.person(7009)
    running_card, _ = await confirm(product, second)
    await shows(product, second.chat_id, running_card.message_id, "⚙️ Z-Image: generating…")

    successor = JobStatusMessages(product.stack.pool, StatusBoard(product.chat.bot),
                                  product.stack.catalog)
    await successor.refresh(product.stack.leadership)
    await successor.board.flush()
    await shows(product, first.chat_id, card_id, "✅ Z-Image: done in ")
    await shows(product, second.chat_id, running_card.message_id,
                "⚙️ Z-Image: generating… 0:")
    await successor.close()
    await eventually(recorded, what="the final stage recorded by the new leader")
