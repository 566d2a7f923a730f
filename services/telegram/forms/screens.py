"""What the form shows: the question for one input, or the card with the price.

Screens are plain data (text and rows of buttons, each button an `Action`) built through a
translate function `t(message_id, **args)` (the chat's i18n), so they carry no aiogram types
and read the same in every language. The handler turns Actions into callback data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from services.catalog import InputField, Model
from services.telegram.forms import engine
from services.telegram.forms.engine import Form
from services.telegram.forms.values import Refusal, is_media, item_limit, media_type

Money = Callable[[int], str]
# Enum inputs with more values than this get two buttons a row instead of three.
WIDE_ENUM_VALUES = 6
CURRENT_MARK = "✅ "
# The form's message ids in the locales' generate.ftl, and the shared input labels (inputs.ftl).
MESSAGE_PREFIX = "generate-"
INPUT_LABEL_PREFIX = "input-"
PLURAL_ARG = "count"


class Verb(StrEnum):
    """What a form button does (not persisted: only inside callback data)."""

    PICK = "p"     # choose enum value b of input a
    YES = "y"      # bool input a := true
    NO = "n"       # bool input a := false
    TOGGLE = "t"   # flip bool input a on the card
    OPEN = "o"     # ask card input a
    RESET = "r"    # forget the value of the input being asked (default again)
    DONE = "d"     # stop adding files to the array being asked
    BACK = "b"     # back to the card, nothing changed
    GO = "g"       # generate: request the job (the confirm press); `a` = the price shown, kop
    CANCEL = "x"   # drop the form


class Translate(Protocol):
    """The chat's i18n: the text of a message id in the user's language."""

    def __call__(self, key: str, /, **args: object) -> str: ...


@dataclass(frozen=True, slots=True)
class Action:
    """A button's meaning: a verb on the form's card, with up to two small numbers."""

    verb: Verb
    a: int = 0
    b: int = 0


@dataclass(frozen=True, slots=True)
class Button:
    """One inline button."""

    label: str
    action: Action


@dataclass(frozen=True, slots=True)
class Screen:
    """A message: text and rows of buttons."""

    text: str
    rows: tuple[tuple[Button, ...], ...] = ()


@dataclass(frozen=True, slots=True)
class Quote:
    """What a generation with the card's values costs, and the user's balance."""

    price_kop: int
    free: bool
    balance_kop: int


def label(t: Translate, f: InputField) -> str:
    """Return the input's name for people (the catalog's shared input labels)."""
    return t(INPUT_LABEL_PREFIX + f.name.replace("_", "-"))


def say(t: Translate, key: str, **args: object) -> str:
    """Return the form's text `key`.

    Numbers go in as text (Fluent would group 1000 as "1,000"), except `count`, which picks
    a plural form.
    """
    return t(MESSAGE_PREFIX + key, **{name: value if name == PLURAL_ARG else _plain(value)
                                      for name, value in args.items()})


def refusal_text(t: Translate, model: Model, refusal: Refusal) -> str:
    """Return the friendly re-ask for a refused value, naming the rule."""
    args: dict[str, object] = dict(refusal.args)
    name = args.get("field")
    target = model.field(str(name)) if name is not None else None
    if target is not None:
        args["label"] = label(t, target)
    values = args.get("values")
    if isinstance(values, Sequence) and not isinstance(values, str):
        args["values"] = _alternatives(t, [str(v) for v in values])
    return say(t, refusal.rule, **args)


def ask(t: Translate, lang: str, model: Model, form: Form) -> Screen:
    """Return the question for the input being asked."""
    target = engine.current_field(model, form)
    assert target is not None, "ask() needs an input being asked"
    index = model.inputs.index(target)
    title = model.title.get(lang)
    current = engine.effective(model, form).get(target.name)
    rows: list[tuple[Button, ...]] = []
    if target.type == "enum":
        buttons = [Button(_marked(value, value == current), Action(Verb.PICK, index, i))
                   for i, value in enumerate(target.values)]
        rows.extend(_rows(buttons, 2 if len(buttons) > WIDE_ENUM_VALUES else 3))
        text = say(t, "ask-enum", model=title, label=label(t, target))
    elif target.type == "bool":
        rows.append((Button(_marked(say(t, "yes"), current is True), Action(Verb.YES, index)),
                     Button(_marked(say(t, "no"), current is False), Action(Verb.NO, index))))
        text = say(t, "ask-bool", model=title, label=label(t, target))
    elif is_media(target):
        text = _ask_media(t, title, target, form)
        count = len(form.values.get(target.name) or []) if target.type == "array" else 0
        if count:
            rows.append((Button(say(t, "button-done", count=count), Action(Verb.DONE)),))
    else:
        key, limits = _typed_question(target)
        text = say(t, key, model=title, label=label(t, target), **limits)
    on_card = target.name in {f.name for f in engine.card_fields(model)}
    if on_card and target.name in form.values:
        rows.append((Button(say(t, "button-default"), Action(Verb.RESET)),))
    if on_card or not engine.missing(model, form):  # a prefilled form keeps its value on Back
        rows.append((Button(say(t, "button-back"), Action(Verb.BACK)),))
    rows.append((Button(say(t, "button-cancel"), Action(Verb.CANCEL)),))
    return Screen(text, tuple(rows))


def card(t: Translate, lang: str, model: Model, form: Form, quote: Quote,
         money: Money) -> Screen:
    """Return the card: the model, every parameter, the price, the balance after, Generate."""
    now = engine.effective(model, form)
    lines = [say(t, "card-title", model=model.title.get(lang)), model.description.get(lang), ""]
    for f in model.inputs:
        if f.name in now:
            shown = show_value(t, f, now[f.name])
            default = f.name not in form.values
            lines.append(say(t, "card-param", label=label(t, f), value=shown,
                           default="yes" if default else "no"))
    lines.append("")
    price = say(t, "free") if quote.free else money(quote.price_kop)
    lines.append(say(t, "card-price", price=price))
    after = quote.balance_kop - (0 if quote.free else quote.price_kop)
    if after >= 0:
        lines.append(say(t, "card-balance-after", balance=money(after)))
    else:
        lines.append(say(t, "card-short", shortfall=money(-after)))
    lines.append(say(t, "card-charged-on-success"))
    rows: list[tuple[Button, ...]] = []
    options: list[Button] = []
    for f in engine.card_fields(model):
        index = model.inputs.index(f)
        value = now.get(f.name)
        shown = show_value(t, f, value) if value is not None else say(t, "value-unset")
        verb = Verb.TOGGLE if f.type == "bool" else Verb.OPEN
        options.append(Button(f"{label(t, f)}: {shown}", Action(verb, index)))
    rows.extend(_rows(options, 2))
    # The press agrees to the price it shows: the request refuses any other (PriceChanged).
    rows.append((Button(say(t, "button-generate", price=price),
                        Action(Verb.GO, 0 if quote.free else quote.price_kop)),))
    rows.append((Button(say(t, "button-cancel"), Action(Verb.CANCEL)),))
    return Screen("\n".join(lines), tuple(rows))


def show_value(t: Translate, f: InputField, value: object) -> str:
    """Return a value as the card shows it (files as a count, bools as yes / no)."""
    if is_media(f):
        count = len(value) if isinstance(value, list) else 1
        return say(t, "value-files", count=count)
    if isinstance(value, bool):
        return say(t, "yes") if value else say(t, "no")
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "…"


def _ask_media(t: Translate, title: str, target: InputField, form: Form) -> str:
    kind = media_type(target)
    assert kind is not None
    if target.type != "array":
        return say(t, "ask-media", model=title, label=label(t, target), kind=kind[:-4])
    count = len(form.values.get(target.name) or [])
    return say(t, "ask-media-items", model=title, label=label(t, target), kind=kind[:-4],
             count=count, max=item_limit(target))


def _typed_question(f: InputField) -> tuple[str, Mapping[str, object]]:
    """Return the message id asking for a typed value of f, and the limits it names."""
    if f.type == "string":
        return ("ask-string-max", {"max": f.max_length}) if f.max_length else ("ask-string", {})
    if f.min is not None and f.max is not None:
        return "ask-" + f.type + "-range", {"min": f.min, "max": f.max}
    return "ask-" + f.type, {}


def _plain(value: object) -> object:
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def _marked(text: str, current: bool) -> str:
    return CURRENT_MARK + text if current else text


def _rows(buttons: Sequence[Button], width: int) -> list[tuple[Button, ...]]:
    return [tuple(buttons[i:i + width]) for i in range(0, len(buttons), width)]


def _alternatives(t: Translate, values: Sequence[str]) -> str:
    if len(values) <= 1:
        return "".join(values)
    return ", ".join(values[:-1]) + " " + say(t, "or") + " " + values[-1]
