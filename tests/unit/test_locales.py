"""The texts: every key in both languages with the same placeholders, plurals, input labels."""

from __future__ import annotations

import pytest

from services.catalog import get_catalog
from services.telegram import texts
from services.telegram.i18n import LOCALES_DIR, message_variables
from services.users import Language


def test_every_text_exists_in_both_languages_with_the_same_placeholders() -> None:
    ru, en = message_variables("ru"), message_variables("en")
    assert set(ru) == set(en), set(ru) ^ set(en)
    for key in ru:
        assert ru[key] == en[key], key


def test_every_feature_has_its_file_in_both_languages() -> None:
    assert ({p.name for p in (LOCALES_DIR / "ru").glob("*.ftl")}
            == {p.name for p in (LOCALES_DIR / "en").glob("*.ftl")})
    assert {p.name for p in LOCALES_DIR.iterdir()} == {str(lang) for lang in Language}


def test_every_catalog_input_has_a_label_in_both_languages() -> None:
    keys = set(message_variables("en"))
    names = {f.name for m in get_catalog() for f in m.inputs}
    assert {"input-" + n.replace("_", "-") for n in names} <= keys


@pytest.mark.parametrize(("count", "word"), [
    (1, "модель"), (2, "модели"), (4, "модели"), (5, "моделей"), (11, "моделей"),
    (21, "модель"), (22, "модели"), (25, "моделей"), (101, "модель"), (111, "моделей")])
def test_russian_counts_take_the_cldr_plural_form(count: int, word: str) -> None:
    text = texts.core().get("catalog-free", "ru", count=count)
    assert f"{count} {word}." in text


def test_english_counts_take_one_and_other() -> None:
    assert "1 model." in texts.core().get("catalog-free", "en", count=1)
    assert "2 models." in texts.core().get("catalog-free", "en", count=2)


def test_russian_speakers_and_unknown_codes_get_russian_and_everyone_else_english() -> None:
    # No language code at all is the bot's home language, on screens and in unprompted
    # messages alike (one rule: services.telegram.i18n.language_of).
    assert texts.get("uk", "ui-menu") == texts.get(None, "ui-menu") == "☰ Меню"
    assert texts.get("de", "ui-menu") == "☰ Menu"


def test_rubles_are_grouped_with_two_decimals() -> None:
    assert texts.rubles(1234567) == "12 345.67 ₽"
    assert texts.rubles(-5) == "-0.05 ₽"
