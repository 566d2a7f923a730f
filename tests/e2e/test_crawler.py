"""The crawler: from /start, press every reachable button breadth-first, in Russian and English.

Every press must be answered (answerCallbackQuery once per press), no update may fail or be
retried, and every screen must lead back to the menu (a Menu button, or be the menu). A text
prompt (the chat in an FSM state) gets a typed value. Bounded to MAX_PRESSES per language.
The user has two finished generations (one done, one failed), so the buttons under their
results are pressed too, with the history's.
"""

from __future__ import annotations

import logging
from collections import deque

import pytest

from services.telegram.ui import ResultAct, ResultCb
from tests.e2e.chat import ChatBot, Person, Screen

MAX_PRESSES = 400
TYPED_VALUE = "kling"
MENU_DATA = "home"
STATE_SQL = b"SELECT state FROM fsm_states WHERE chat_id = %s AND state IS NOT NULL"
JOB_SQL = b"""
INSERT INTO generation_jobs (user_id, chat_id, model_id, params, price_kop, category, status,
                             idempotency_key, finished_at, delivered_at)
VALUES (%s, %s, 'z-image', '{"prompt": "a fox"}', 0, 'image', %s, %s, now(), now())
RETURNING id
"""


def leads_home(screen: Screen) -> bool:
    """Return whether the screen has a way back to the menu (or is the menu)."""
    data = screen.data()
    # A status message's Menu (ResultCb MENU) opens the menu below it.
    menus = {d for d in data if d.startswith(f"{ResultCb.__prefix__}:")
             and ResultCb.unpack(d).act is ResultAct.MENU}
    return MENU_DATA in data or bool(menus) or {"help", "bal", "hist:0"} <= set(data)


async def in_prompt(chatbot: ChatBot, person: Person) -> bool:
    async with chatbot.pool.connection() as conn:
        cur = await conn.execute(STATE_SQL, (person.chat_id,))
        return await cur.fetchone() is not None


@pytest.mark.parametrize("language", ["ru", "en"])
async def test_every_reachable_button_answers_fails_nothing_and_leads_back_to_the_menu(
        chatbot: ChatBot, language: str, caplog: pytest.LogCaptureFixture) -> None:
    person = chatbot.person(900, language=language)
    start = await person.send("/start")
    results: list[str] = []
    async with chatbot.pool.connection() as conn:
        for status in ("succeeded", "failed"):
            cur = await conn.execute(JOB_SQL, (900, 900, status, f"crawl-{status}"))
            row = await cur.fetchone()
            assert row is not None
            results += [ResultCb(act=act, job=row[0]).pack() for act in ResultAct]
    seen: set[str] = set(start.data()) | set(results)
    queue: deque[str] = deque([*start.data(), *results])
    dead_ends: list[tuple[str, str]] = []
    typed = 0
    while queue and person.presses < MAX_PRESSES:
        data = queue.popleft()
        screen = await person.press(data)
        if await in_prompt(chatbot, person) and typed < MAX_PRESSES // 10:
            typed += 1
            reply = await person.send(TYPED_VALUE)
            if not leads_home(reply):
                dead_ends.append((f"{data} + typed", reply.text))
            for found in reply.data():
                if found not in seen:
                    seen.add(found)
                    queue.append(found)
        if not leads_home(screen):
            dead_ends.append((data, screen.text))
        for found in screen.data():
            if found not in seen:
                seen.add(found)
                queue.append(found)
    answers = [e for e in await person.log() if e["method"] == "answerCallbackQuery"]
    assert person.presses > 100, f"only {person.presses} buttons reached"
    assert len(answers) == person.presses, "a press was not answered exactly once"
    assert dead_ends == []
    assert await chatbot.trouble() == []
    assert chatbot.state.counters.get("updates_failed", 0) == 0
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
