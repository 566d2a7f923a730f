"""The form's texts exist in both languages, and a refusal reads as a rule in either."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from services.catalog import get_catalog
from services.telegram import texts
from services.telegram.forms import screens
from services.telegram.forms.values import Refusal, parse_text
from services.telegram.i18n import message_variables

SOURCES = [Path(screens.__file__).parent, Path(screens.__file__).parents[1] / "handlers"]
# Message ids the form code names: Refusal("rule-x"), say(t, "x"), say(i18n.get, "x").
USED_RE = re.compile(r'(?:Refusal\(|say\([\w.]+, )"([a-z][a-z0-9-]*)"')
LANGUAGES = ("en", "ru")


def used_ids() -> set[str]:
    found: set[str] = set()
    for folder in SOURCES:
        for path in folder.glob("*.py"):
            if path.name in ("generate.py",) or folder.name == "forms":
                found |= set(USED_RE.findall(path.read_text()))
    return {screens.MESSAGE_PREFIX + key for key in found}


def test_every_form_text_exists_in_both_languages_with_the_same_placeholders() -> None:
    used = used_ids()
    assert len(used) > 30
    en, ru = (message_variables(lang) for lang in LANGUAGES)
    assert used <= set(en) and used <= set(ru), (used - set(en)) | (used - set(ru))
    for key in used:
        assert en[key] == ru[key], key


def test_every_catalog_input_has_a_label_in_both_languages() -> None:
    for lang in LANGUAGES:
        known = message_variables(lang)
        for model in get_catalog():
            for f in model.inputs:
                assert screens.INPUT_LABEL_PREFIX + f.name.replace("_", "-") in known


@pytest.mark.parametrize(("lang", "expected"), [
    ("en", "Duration must be 5 or 10 seconds."),
    ("ru", "«Длительность»: можно 5 или 10 секунд."),
])
def test_a_refused_enum_names_its_values_in_the_users_language(lang: str,
                                                               expected: str) -> None:
    model = get_catalog()["kling-2.6/text-to-video"]
    field = model.field("duration")
    assert field is not None
    refusal = parse_text(field, "7")
    assert isinstance(refusal, Refusal)

    def t(key: str, /, **args: object) -> str:
        return texts.core().get(key, lang, **args)

    assert screens.refusal_text(t, model, refusal) == expected


def test_a_long_prompt_is_refused_with_its_limit_not_a_grouped_number() -> None:
    model = get_catalog()["z-image"]
    field = model.field("prompt")
    assert field is not None
    refusal = parse_text(field, "x" * 1001)
    assert isinstance(refusal, Refusal)

    def t(key: str, /, **args: object) -> str:
        return texts.core().get(key, "en", **args)

    assert screens.refusal_text(t, model, refusal) == (
        "Prompt: at most 1000 characters (you sent 1001).")
