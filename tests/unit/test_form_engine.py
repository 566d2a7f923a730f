"""The form engine fills every input type of the catalog, and a bad value changes nothing."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.catalog import InputField, LocalizedText, Model, Sku, get_catalog
from services.telegram.forms import engine, screens
from services.telegram.forms.engine import Form
from services.telegram.forms.screens import Action, Quote, Verb
from services.telegram.forms.values import (
    ARRAY_ITEMS_CAP,
    TELEGRAM_GETFILE_MAX_BYTES,
    Refusal,
    Upload,
    parse_text,
    parse_upload,
)


def t(key: str, /, **args: object) -> str:
    """Translate to the message id and its arguments (enough to see what was said)."""
    shown = ", ".join(f"{k}={v}" for k, v in sorted(args.items()))
    return f"{key}({shown})" if shown else key


def money(kop: int) -> str:
    return f"{kop / 100:.2f} RUB"


def model_of(*inputs: InputField, skus: tuple[Sku, ...] | None = None) -> Model:
    return Model(id="m", kie_model="m", endpoint="/api/v1/jobs/createTask", category="image",
                 model_type="image_edit", title=LocalizedText("М", "M"),
                 description=LocalizedText("о", "d"), inputs=inputs,
                 skus=skus or (Sku(params={}, price_rub=Decimal("1.00"), unit="image"),))


PROMPT = InputField("prompt", "string", required=True, max_length=10)
IMAGES = InputField("image_urls", "array", required=True, item_type="image_url", max_items=2)
DURATION = InputField("duration", "enum", default="5", values=("5", "10"))
SOUND = InputField("sound", "bool", default=False)
STEPS = InputField("steps", "int", min=2, max=40)
SCALE = InputField("scale", "float", min=0, max=1)
EDIT = model_of(PROMPT, IMAGES, DURATION, SOUND, STEPS, SCALE)


def test_media_is_asked_before_the_prompt_and_defaults_go_to_the_card() -> None:
    assert [f.name for f in engine.asked_fields(EDIT)] == ["image_urls", "prompt"]
    assert [f.name for f in engine.card_fields(EDIT)] == ["duration", "sound", "steps", "scale"]
    form = engine.start(EDIT, card="c1")
    assert form.asking == "image_urls"


def test_an_upload_is_stored_as_a_telegram_reference_and_done_moves_on() -> None:
    form = engine.start(EDIT, card="c1")
    form = engine.send_upload(EDIT, form, Upload("photo", "AAA", 1000), card="c2")
    assert isinstance(form, Form)
    assert form.values["image_urls"] == ["tg:AAA"] and form.asking == "image_urls"
    done = engine.finish_items(EDIT, form, card="c3")
    assert isinstance(done, Form) and done.asking == "prompt"


def test_an_array_moves_on_by_itself_when_full() -> None:
    form = engine.start(EDIT, card="c1")
    for n in range(2):
        step = engine.send_upload(EDIT, form, Upload("document", f"F{n}", 10, "image/png"),
                                  card=f"c{n}")
        assert isinstance(step, Form)
        form = step
    assert form.values["image_urls"] == ["tg:F0", "tg:F1"] and form.asking == "prompt"


def test_done_with_no_file_is_refused() -> None:
    form = engine.start(EDIT, card="c1")
    assert engine.finish_items(EDIT, form, card="c2") == Refusal(
        "rule-items-min", {"field": "image_urls"})


def test_an_array_without_max_items_stops_at_the_album_size() -> None:
    f = InputField("image_input", "array", required=True, item_type="image_url")
    model = model_of(f, PROMPT)
    form = engine.start(model, card="c")
    for n in range(ARRAY_ITEMS_CAP):
        step = engine.send_upload(model, form, Upload("photo", str(n)), card="c")
        assert isinstance(step, Form)
        form = step
    assert form.asking == "prompt" and len(form.values["image_input"]) == ARRAY_ITEMS_CAP


@pytest.mark.parametrize(("upload", "rule"), [
    (Upload("video", "V"), "rule-media"),
    (Upload("document", "D", 10, "text/plain"), "rule-media"),
    (Upload("photo", "P", TELEGRAM_GETFILE_MAX_BYTES + 1), "rule-too-big"),
])
def test_a_wrong_or_too_big_file_is_refused_and_changes_nothing(upload: Upload,
                                                                 rule: str) -> None:
    form = engine.start(EDIT, card="c1")
    refused = engine.send_upload(EDIT, form, upload, card="c2")
    assert isinstance(refused, Refusal) and refused.rule == rule
    assert form.values == {} and form.card == "c1"


def test_a_file_of_exactly_twenty_megabytes_is_accepted() -> None:
    f = InputField("video_url", "video_url", required=True)
    assert parse_upload(f, Upload("video", "V", TELEGRAM_GETFILE_MAX_BYTES)) == "tg:V"


@pytest.mark.parametrize(("kind", "upload"), [
    ("image_url", Upload("photo", "x")),
    ("image_url", Upload("document", "x", mime_type="image/webp")),
    ("video_url", Upload("video", "x")),
    ("video_url", Upload("document", "x", mime_type="video/mp4")),
    ("audio_url", Upload("audio", "x")),
    ("audio_url", Upload("voice", "x")),
    ("audio_url", Upload("document", "x", mime_type="audio/mpeg")),
])
def test_each_media_type_takes_its_uploads(kind: str, upload: Upload) -> None:
    assert parse_upload(InputField("f", kind, required=True), upload) == "tg:x"


def test_an_https_link_is_a_media_value_and_other_text_is_refused() -> None:
    f = InputField("audio_url", "audio_url", required=True)
    assert parse_text(f, " https://example.com/a.mp3 ") == "https://example.com/a.mp3"
    for bad in ("http://example.com/a.mp3", "example.com/a.mp3", "https://", "a b"):
        refused = parse_text(f, bad)
        assert isinstance(refused, Refusal) and refused.rule == "rule-media", bad


def test_a_text_too_long_is_refused_naming_the_limit() -> None:
    assert parse_text(PROMPT, "x" * 11) == Refusal(
        "rule-max-length", {"field": "prompt", "max": 10, "length": 11})
    assert parse_text(PROMPT, "   ") == Refusal("rule-empty", {"field": "prompt"})
    assert parse_text(PROMPT, "a cat") == "a cat"


def test_typed_numbers_are_range_checked() -> None:
    assert parse_text(STEPS, "12") == 12
    assert parse_text(STEPS, "1") == Refusal("rule-range", {"field": "steps", "min": 2,
                                                            "max": 40})
    assert parse_text(STEPS, "2.5") == Refusal("rule-int", {"field": "steps"})
    assert parse_text(SCALE, "0,5") == 0.5
    assert parse_text(SCALE, "nan") == Refusal("rule-number", {"field": "scale"})
    assert parse_text(SCALE, "much") == Refusal("rule-number", {"field": "scale"})
    only_min = InputField("n", "int", min=1)
    assert parse_text(only_min, "0") == Refusal("rule-min", {"field": "n", "min": 1})


def test_enum_text_matches_a_value_or_names_the_allowed_ones() -> None:
    assert parse_text(DURATION, "10") == "10"
    assert parse_text(DURATION, "7") == Refusal("rule-enum", {"field": "duration",
                                                              "values": ["5", "10"]})
    text = screens.refusal_text(t, EDIT, Refusal("rule-enum", {"field": "duration",
                                                               "values": ["5", "10"]}))
    assert "values=5 generate-or 10" in text and "label=input-duration" in text


def test_bool_words_in_both_languages() -> None:
    assert parse_text(SOUND, "Да") is True and parse_text(SOUND, "off") is False
    assert parse_text(SOUND, "maybe") == Refusal("rule-bool", {"field": "sound"})


def _filled() -> Form:
    form = engine.start(EDIT, card="c1")
    form = engine.send_upload(EDIT, form, Upload("photo", "A"), card="c2")  # type: ignore[arg-type]
    form = engine.finish_items(EDIT, form, card="c3")  # type: ignore[arg-type]
    form = engine.type_text(EDIT, form, "a cat", card="c4")  # type: ignore[arg-type]
    assert isinstance(form, Form)
    return form


def test_the_card_toggles_picks_opens_and_resets() -> None:
    form = _filled()
    assert form.asking is None and engine.missing(EDIT, form) == []
    sound = EDIT.inputs.index(SOUND)
    toggled = engine.toggle(EDIT, form, sound, card="c5")
    assert isinstance(toggled, Form) and toggled.values["sound"] is True
    duration = EDIT.inputs.index(DURATION)
    opened = engine.open_field(EDIT, toggled, duration)
    assert isinstance(opened, Form) and opened.asking == "duration"
    picked = engine.pick(EDIT, opened, duration, 1, card="c6")
    assert isinstance(picked, Form) and picked.values["duration"] == "10"
    assert picked.asking is None and picked.card == "c6"
    steps = EDIT.inputs.index(STEPS)
    reopened = engine.open_field(EDIT, picked, steps)
    assert isinstance(reopened, Form)
    typed = engine.type_text(EDIT, reopened, "30", card="c7")
    assert isinstance(typed, Form) and typed.values["steps"] == 30
    again = engine.open_field(EDIT, typed, steps)
    assert isinstance(again, Form)
    cleared = engine.reset(EDIT, again, card="c8")
    assert isinstance(cleared, Form) and "steps" not in cleared.values
    assert engine.params(cleared) == {"image_urls": ["tg:A"], "prompt": "a cat",
                                      "sound": True, "duration": "10"}


def test_text_on_the_card_replaces_the_prompt() -> None:
    form = engine.type_text(EDIT, _filled(), "a dog", card="c9")
    assert isinstance(form, Form) and form.values["prompt"] == "a dog" and form.asking is None


def test_a_required_question_cannot_be_skipped_with_back() -> None:
    form = engine.start(EDIT, card="c1")
    assert engine.back(EDIT, form) == Refusal("rule-stale")
    assert engine.open_field(EDIT, form, EDIT.inputs.index(PROMPT)) == Refusal("rule-stale")


def test_the_form_round_trips_through_fsm_data() -> None:
    form = _filled()
    assert Form.from_data(form.to_data()) == form


def test_the_ask_screen_marks_the_current_enum_value() -> None:
    form = engine.open_field(EDIT, _filled(), EDIT.inputs.index(DURATION))
    assert isinstance(form, Form)
    screen = screens.ask(t, "en", EDIT, form)
    labels = [b.label for row in screen.rows for b in row]
    assert labels[:2] == [screens.CURRENT_MARK + "5", "10"]
    actions = [b.action for row in screen.rows for b in row]
    assert Action(Verb.BACK) in actions and Action(Verb.CANCEL) in actions


def test_the_card_shows_price_balance_after_and_charged_only_on_success() -> None:
    screen = screens.card(t, "en", EDIT, _filled(), Quote(price_kop=200, free=False,
                                                         balance_kop=500), money)
    assert "card-price(price=2.00 RUB)" in screen.text
    assert "card-balance-after(balance=3.00 RUB)" in screen.text
    assert "card-charged-on-success" in screen.text
    go = [b for row in screen.rows for b in row if b.action.verb is Verb.GO]
    assert [b.label for b in go] == ["generate-button-generate(price=2.00 RUB)"]
    short = screens.card(t, "en", EDIT, _filled(), Quote(200, False, 50), money)
    assert "card-short(shortfall=1.50 RUB)" in short.text


def test_every_catalog_model_can_be_filled_and_validates() -> None:
    """One engine for every model: valid answers to its questions make valid parameters."""
    catalog = get_catalog()
    for model in catalog:
        form = engine.start(model, card="c")
        for _ in range(50):
            target = engine.current_field(model, form)
            if target is None:
                break
            step: Form | Refusal
            if target.type == "enum":
                step = engine.pick(model, form, model.inputs.index(target), 0, card="c")
            elif target.type == "bool":
                step = engine.choose_bool(model, form, model.inputs.index(target), True,
                                          card="c")
            elif target.type == "array":
                step = engine.send_upload(model, form, _upload_for(target.item_type), card="c")
                if isinstance(step, Form) and step.asking == target.name:
                    step = engine.finish_items(model, step, card="c")
            elif target.type.endswith("_url"):
                step = engine.send_upload(model, form, _upload_for(target.type), card="c")
            else:
                step = engine.type_text(model, form, "1" if target.type in ("int", "float")
                                        else "a cat", card="c")
            assert isinstance(step, Form), (model.id, target.name, step)
            form = step
        assert form.asking is None, model.id
        model.validate_params(engine.params(form))


def _upload_for(kind: str | None) -> Upload:
    return {"image_url": Upload("photo", "P"), "video_url": Upload("video", "V"),
            "audio_url": Upload("voice", "A")}[str(kind)]


def test_the_quick_path_fills_the_prompt_and_still_asks_for_the_media() -> None:
    form = engine.start_with_prompt(EDIT, "a cat", card="c1")
    assert isinstance(form, Form)
    assert form.values == {"prompt": "a cat"} and form.asking == "image_urls"
    assert engine.start_with_prompt(EDIT, "x" * 11, card="c1") == Refusal(
        "rule-max-length", {"field": "prompt", "max": 10, "length": 11})
    no_prompt = model_of(IMAGES)
    assert engine.start_with_prompt(no_prompt, "a cat", card="c1") == Refusal(
        "rule-use-buttons")
