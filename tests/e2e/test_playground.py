"""The playground page in a real headless browser: Debian's chromium driven by Playwright.

Two kinds of test: the page renders whatever a bot sends (the test plays the bot through the
Bot API of the in-process sandbox), and `python -m supervisor play` chats with the real bot
process. Where chromium or Playwright is missing, or the browser cannot start, they skip
saying so (`apt-get install -y chromium`; Playwright comes with the dev extra).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest

from sandbox.common.media import make_png
from tests.e2e.playground_stand import CHAT_ID, Stand, open_stand
from tests.helpers import eventually

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
CHROMIUM: Final = Path(os.environ.get("PLAYGROUND_CHROMIUM", "/usr/bin/chromium"))
# Debian's chromium refuses its own sandbox as root (CI runs as root); the page is ours.
CHROMIUM_ARGS: Final = ("--no-sandbox",)
UI_TIMEOUT_MS: Final = 20_000
START_TIMEOUT_S: Final = 90.0  # PostgreSQL, both sandboxes and the bot start before the page
STOP_TIMEOUT_S: Final = 40.0
GENERATION_TIMEOUT_MS: Final = 60_000  # Kie sandbox image tasks take ~3 s; delivery follows
SCREENSHOT_ENV: Final = "PLAYGROUND_SCREENSHOT"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    try:
        from playwright.async_api import Error, async_playwright
    except ImportError:
        pytest.skip("Playwright is not installed: pip install -e '.[dev]'")
    if not CHROMIUM.exists():
        pytest.skip(f"no chromium at {CHROMIUM}: apt-get install -y chromium")
    async with async_playwright() as playwright:
        try:
            launched = await playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=list(CHROMIUM_ARGS))
        except Error as exc:
            pytest.skip(f"chromium at {CHROMIUM} does not start here: {exc.message}")
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def stand() -> AsyncIterator[Stand]:
    async with open_stand() as opened:
        yield opened


async def _open(browser: Browser, url: str) -> Page:
    page = await browser.new_page(viewport={"width": 760, "height": 900})
    page.set_default_timeout(UI_TIMEOUT_MS)
    await page.goto(url)
    return page


async def _type(page: Page, text: str) -> None:
    await page.fill("#text", text)
    await page.press("#text", "Enter")


async def _next_update(stand: Stand) -> dict[str, Any]:
    """Wait for the next update the page sent; return it."""
    found: list[dict[str, Any]] = []

    async def arrived() -> bool:
        found.extend(await stand.updates())
        return bool(found)

    await eventually(arrived, what="an update from the page")
    return found[0]


async def test_page_renders_formatted_text_keyboards_edits_and_toasts(
        stand: Stand, browser: Browser) -> None:
    from playwright.async_api import expect

    page = await _open(browser, str(stand.page.make_url("/")))
    await _type(page, "hi")
    assert (await _next_update(stand))["message"]["text"] == "hi"
    await expect(page.locator(".msg.user")).to_have_text(re.compile("hi"))
    sent = await stand.bot(
        "sendMessage", chat_id=CHAT_ID, parse_mode="HTML",
        text="<b>Pick</b> a <i>model</i> &lt;script&gt;alert(1)&lt;/script&gt; "
             "<a href='https://kie.ai'>site</a> <a href='javascript:alert(2)'>trap</a>",
        reply_markup={"inline_keyboard": [[{"text": "Z-Image", "callback_data": "m:1"},
                                           {"text": "Docs", "url": "https://kie.ai/docs"}]]})
    bubble = page.locator(f".msg.bot[data-message-id='{sent['message_id']}']")
    await expect(bubble.locator("strong")).to_have_text("Pick")
    await expect(bubble.locator("em")).to_have_text("model")
    await expect(bubble).to_contain_text("<script>alert(1)</script>")
    assert await page.locator("#chat script").count() == 0
    await expect(bubble.locator("a", has_text="site")).to_have_attribute(
        "href", "https://kie.ai/")
    assert await bubble.locator("a", has_text="trap").count() == 0  # javascript: is no link
    await expect(bubble.locator("a.link-button")).to_have_attribute("href",
                                                                     "https://kie.ai/docs")

    await bubble.get_by_role("button", name="Z-Image").click()
    query = (await _next_update(stand))["callback_query"]
    assert (query["data"], query["message"]["message_id"]) == ("m:1", sent["message_id"])
    await stand.bot("answerCallbackQuery", callback_query_id=query["id"], text="Saved")
    await expect(page.locator("#toast")).to_have_text("Saved")

    await stand.bot("editMessageText", chat_id=CHAT_ID, message_id=sent["message_id"],
                    text="Queued: 1 of 1")
    await expect(bubble.locator(".text")).to_have_text("Queued: 1 of 1")
    await expect(bubble.locator(".meta")).to_contain_text("edited")
    await expect(bubble.locator(".inline-keyboard")).to_have_count(0)
    await expect(page.locator(".msg.bot")).to_have_count(1)


async def test_page_shows_media_albums_documents_and_reply_keyboards(
        stand: Stand, browser: Browser) -> None:
    from playwright.async_api import expect

    page = await _open(browser, str(stand.page.make_url("/")))
    await _type(page, "media please")
    await _next_update(stand)
    await stand.bot_upload("sendPhoto", "photo", make_png(64, 48, (200, 30, 30)), "a.png",
                           caption="your image")
    await expect(page.locator(".msg.bot .text.caption")).to_have_text("your image")
    picture = page.locator(".msg.bot img.photo").first
    await expect(picture).to_have_js_property("naturalWidth", 64)

    group = await stand.bot_upload("sendDocument", "document", b"hello", "notes.txt")
    document = page.locator(f"[data-message-id='{group['message_id']}'] a.document")
    await expect(document).to_contain_text("notes.txt")
    response = await stand.page.get(await document.get_attribute("href") or "")
    assert await response.read() == b"hello"

    await stand.bot("sendMediaGroup", chat_id=CHAT_ID, media=[
        {"type": "photo", "media": "https://cdn.example.test/1.png", "caption": "one"},
        {"type": "photo", "media": "https://cdn.example.test/2.png"}])
    await expect(page.locator(".album-grid .cell")).to_have_count(2)

    await stand.bot("sendMessage", chat_id=CHAT_ID, text="Are you sure?",
                    reply_markup={"keyboard": [[{"text": "Yes"}, {"text": "No"}]],
                                  "one_time_keyboard": True})
    keyboard = page.locator("#reply-keyboard")
    await keyboard.get_by_role("button", name="Yes").click()
    assert (await _next_update(stand))["message"]["text"] == "Yes"
    await expect(keyboard).to_be_hidden()


async def test_page_uploads_a_photo_as_the_users_message(stand: Stand,
                                                         browser: Browser) -> None:
    from playwright.async_api import expect

    page = await _open(browser, str(stand.page.make_url("/")))
    picture = make_png(30, 20, (0, 120, 255))
    await page.fill("#text", "make it anime")
    await page.click("#attach-button")
    async with page.expect_file_chooser() as chooser:
        await page.get_by_role("button", name="Photo").click()
    await (await chooser.value).set_files(
        {"name": "me.png", "mimeType": "image/png", "buffer": picture})
    message = (await _next_update(stand))["message"]
    assert message["caption"] == "make it anime"
    found = await stand.bot("getFile", file_id=message["photo"][-1]["file_id"])
    assert found["file_size"] == len(picture)
    await expect(page.locator(".msg.user img.photo")).to_have_count(1)


# ---------------------------------------------------------------- the real bot


@contextlib.asynccontextmanager
async def _play(database_url: str) -> AsyncIterator[str]:
    """Run `python -m supervisor play --no-browser`; yield the page's address.

    Kie tasks never fail here (`--kie-fail-rate 0`): a test must not depend on a draw.
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "supervisor", "play", "--no-browser", "--kie-fail-rate", "0",
        cwd=REPO_ROOT,
        env={"PATH": os.environ.get("PATH", ""), "DATABASE_URL": database_url},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert process.stdout is not None
    lines: list[str] = []
    try:
        while not (found := re.search(r"playground: (http://127\.0\.0\.1:\d+/)",
                                      lines[-1] if lines else "")):
            raw = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT_S)
            if not raw:
                raise AssertionError(f"play ended before serving the page: {lines}")
            lines.append(raw.decode())
        yield found.group(1)
        process.send_signal(signal.SIGINT)
        rest = (await asyncio.wait_for(process.stdout.read(), STOP_TIMEOUT_S)).decode()
        assert await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S) == 0, rest
        assert "stopped; logs kept in" in rest
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.mark.chaos  # real processes and signals
async def test_playground_chats_with_the_real_bot(browser: Browser,
                                                  database_url: str) -> None:
    from playwright.async_api import expect

    async with _play(database_url) as url:
        page = await _open(browser, url)
        await _type(page, "/start")
        menu = page.locator(".msg.bot").first
        await expect(menu).to_contain_text("Hello, You!")
        await menu.get_by_role("button", name=re.compile("Images")).click()
        await expect(page.locator(".msg.bot").last).to_contain_text(
            re.compile(r"Images: \d+ models"))
        await _type(page, "/balance")
        await expect(page.locator(".msg.bot").last).to_contain_text("balance")


def _product_generates() -> bool:
    """Tell whether the product has the form engine and the generation engine."""
    return all(importlib.util.find_spec(name) is not None
               for name in ("services.telegram.forms", "services.generation.engine"))


@pytest.mark.chaos  # real processes and signals
@pytest.mark.skipif(not _product_generates(),
                    reason="needs the forms and workers (generation engine) on main")
async def test_playground_generates_a_free_image_into_the_chat(browser: Browser,
                                                               database_url: str) -> None:
    from playwright.async_api import expect

    async with _play(database_url) as url:
        page = await _open(browser, url)
        await _type(page, "/start")
        menu = page.locator(".msg.bot").last
        await menu.get_by_role("button", name=re.compile("Free models")).click()
        models = page.locator(".msg.bot").last
        await models.get_by_role("button", name=re.compile("^Z-Image")).click()
        card = page.locator(".msg.bot").last
        await card.get_by_role("button", name=re.compile("Generate")).click()
        await expect(page.locator(".msg.bot").last).to_contain_text(re.compile("prompt", re.I))
        await _type(page, "a red fox in the snow")
        confirm = page.locator(".msg.bot").last
        await confirm.get_by_role("button", name=re.compile(r"Generate ·")).click()
        picture = page.locator(".msg.bot img.photo").last
        await expect(picture).to_be_visible(timeout=GENERATION_TIMEOUT_MS)
        await expect(picture).not_to_have_js_property("naturalWidth", 0)
        # The card became the job's status message, edited to its final stage; the result
        # carries its buttons, and Repeat brings a new card.
        status = page.locator(".msg.bot", has_text=re.compile("Z-Image: done in"))
        await expect(status).to_have_count(1, timeout=GENERATION_TIMEOUT_MS)
        result = page.locator(".msg.bot", has=page.locator("img.photo")).last
        for name in ("Repeat", "Change parameters", "Another model", "Menu"):
            await expect(result.get_by_role("button", name=re.compile(name))).to_be_visible()
        await _maybe_screenshot(page)
        await result.get_by_role("button", name=re.compile("Repeat")).click()
        again = page.locator(".msg.bot").last
        await expect(again.get_by_role("button", name=re.compile(r"Generate ·"))).to_be_visible()


async def _maybe_screenshot(page: Page) -> None:
    """Save the page to $PLAYGROUND_SCREENSHOT when set (how docs/playground.png is made)."""
    if path := os.environ.get(SCREENSHOT_ENV):
        await page.screenshot(path=path)
