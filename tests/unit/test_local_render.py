"""How `python -m supervisor local` shows the bot's actions in the terminal."""

from __future__ import annotations

from sandbox.harness.local import Keyboard, render

KEYBOARD_ENTRY = {
    "seq": 7, "method": "sendMessage", "message_id": 12, "text": "Pick a plan\nor go back",
    "reply_markup": {"inline_keyboard": [
        [{"text": "Buy", "callback_data": "buy:7"}, {"text": "Info", "callback_data": "info"}],
        [{"text": "Site", "url": "https://kie.ai"}]]},
}


def test_inline_keyboard_is_shown_as_numbered_buttons_across_rows() -> None:
    keyboard = Keyboard()
    lines = render(KEYBOARD_ENTRY, keyboard)
    assert lines[:2] == ["bot> Pick a plan", "bot> or go back"]
    assert lines[2].split() == ["[1]", "Buy", "[2]", "Info"]
    assert lines[3].split() == ["[3]", "Site"]
    assert keyboard.message_id == 12
    assert keyboard.button(2) == {"text": "Info", "callback_data": "info"}
    assert keyboard.button(0) is None and keyboard.button(4) is None


def test_edit_names_the_message_and_silent_callback_answer_prints_nothing() -> None:
    keyboard = Keyboard()
    edit = {"method": "editMessageText", "message_id": 12, "text": "Paid"}
    assert render(edit, keyboard) == ["bot (editMessageText #12)> Paid"]
    assert render({"method": "answerCallbackQuery", "text": None}, keyboard) == []
    assert render({"method": "answerCallbackQuery", "text": "Done"}, keyboard) == [
        "bot (notice)> Done"]
    assert keyboard.buttons == []


def test_media_shows_its_kind_and_where_it_is() -> None:
    photo = {"method": "sendPhoto", "message_id": 3, "caption": "Done",
             "media": {"type": "photo", "url": "https://cdn/x.png"}}
    assert render(photo, Keyboard()) == ["bot> Done", "bot> [photo] https://cdn/x.png"]
