"""The form engine: one implementation that fills any catalog model's typed inputs.

A `Form` is plain JSON-able data (it lives in the aiogram FSM, the project's PostgreSQL
storage, keyed per chat) and every step is a pure function `(model, form, input) -> Form |
Refusal`: a refused input returns the Refusal and the caller keeps the old form, so a bad
value changes nothing.

Order of questions: the required inputs without a default, media first (the picture to edit
before the words about it), then the others in catalog order. Everything else - optional
inputs and required ones with a default - sits on the card, shown with its current value
(the default until the user changes it), each tappable. `asking` names the input being asked
(required or opened from the card); None means the card is showing.

`card` names the form's current contents: the caller sets it to an id of the update that
changed them (a re-run of that update sets the same id). The Generate press carries it, and
the job's idempotency key is made from it, so a press that is re-run and a double tap of one
card both find the job the first press made; a changed form has a new card id, and so a new
key, which is why the same key never carries other parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from services.catalog import InputField, Model
from services.telegram.forms.values import (
    Refusal,
    Upload,
    is_media,
    item_limit,
    parse_choice,
    parse_text,
    parse_upload,
)


@dataclass(frozen=True, slots=True)
class Form:
    """One chat's form in progress: the model, the values set so far, what is being asked."""

    model_id: str
    card: str
    values: Mapping[str, Any] = field(default_factory=dict)
    asking: str | None = None

    def to_data(self) -> dict[str, Any]:
        """Return the form as JSON-able FSM data."""
        return {"model_id": self.model_id, "card": self.card, "values": dict(self.values),
                "asking": self.asking}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Form:
        """Return the form stored by to_data."""
        return cls(model_id=str(data["model_id"]), card=str(data["card"]),
                   values=dict(data.get("values") or {}), asking=data.get("asking"))


def asked_fields(model: Model) -> list[InputField]:
    """Return the inputs the form asks for one by one: required without default, media first."""
    needed = [f for f in model.inputs if f.required and f.default is None]
    return sorted(needed, key=lambda f: not is_media(f))  # stable: catalog order otherwise


def card_fields(model: Model) -> list[InputField]:
    """Return the inputs shown on the card, in catalog order."""
    asked = {f.name for f in asked_fields(model)}
    return [f for f in model.inputs if f.name not in asked]


def prompt_field(model: Model) -> InputField | None:
    """Return the model's main text input (the first asked string), or None."""
    return next((f for f in asked_fields(model) if f.type == "string"), None)


def start(model: Model, *, card: str) -> Form:
    """Return a new empty form for model, asking its first question."""
    return _advance(model, Form(model_id=model.id, card=card))


def start_with_prompt(model: Model, text: str, *, card: str) -> Form | Refusal:
    """Return a new form with text as its prompt, asking what else it needs (the quick path)."""
    target = prompt_field(model)
    if target is None:
        return Refusal("rule-use-buttons")
    value = parse_text(target, text)
    if isinstance(value, Refusal):
        return value
    return _advance(model, Form(model_id=model.id, card=card, values={target.name: value}))


def prefilled(model: Model, params: Mapping[str, object], *, card: str,
              ask_first: bool = False) -> Form:
    """Return a form holding an earlier job's params (Repeat: the card; ask_first: its first
    question again, answerable or kept with Back). Values equal to a default stay unset, so
    the card marks them as defaults; inputs the model no longer has are dropped."""
    values = {}
    for name, value in params.items():
        f = model.field(name)
        if f is not None and value != f.default:
            values[name] = value
    form = _advance(model, Form(model_id=model.id, card=card, values=values))
    asked = asked_fields(model)
    if ask_first and form.asking is None and asked:
        form = replace(form, asking=asked[0].name)
    return form


def current_field(model: Model, form: Form) -> InputField | None:
    """Return the input being asked now, or None when the card is showing."""
    return model.field(form.asking) if form.asking else None


def missing(model: Model, form: Form) -> list[InputField]:
    """Return the asked inputs that still have no value, in asking order."""
    return [f for f in asked_fields(model) if _unset(form.values.get(f.name))]


def effective(model: Model, form: Form) -> dict[str, object]:
    """Return what the job would get now: the values set, defaults for the rest."""
    return model.with_defaults(form.values)


def params(form: Form) -> dict[str, object]:
    """Return the values to request a job with (the service fills the defaults)."""
    return {name: value for name, value in form.values.items() if not _unset(value)}


def type_text(model: Model, form: Form, text: str, *, card: str) -> Form | Refusal:
    """Apply typed text to the input being asked (on the card: to the prompt)."""
    target = current_field(model, form) or prompt_field(model)
    if target is None:
        return Refusal("rule-use-buttons")
    if target.type in ("enum", "bool") and form.asking is None:
        return Refusal("rule-use-buttons")
    value = parse_text(target, text)
    if isinstance(value, Refusal):
        return value
    return _accept(model, form, target, value, card=card)


def send_upload(model: Model, form: Form, upload: Upload, *, card: str) -> Form | Refusal:
    """Apply an uploaded file to the media input being asked."""
    target = current_field(model, form)
    if target is None:
        target = next((f for f in missing(model, form) if is_media(f)), None)
        if target is None:
            return Refusal("rule-no-file-expected")
    ref = parse_upload(target, upload)
    if isinstance(ref, Refusal):
        return ref
    return _accept(model, form, target, ref, card=card)


def pick(model: Model, form: Form, field_index: int, value_index: int, *,
         card: str) -> Form | Refusal:
    """Apply a pressed enum button (the field by catalog index, the value by its index)."""
    target = _field_at(model, field_index)
    if target is None:
        return Refusal("rule-stale")
    value = parse_choice(target, value_index)
    if isinstance(value, Refusal):
        return value
    return _accept(model, form, target, value, card=card)


def choose_bool(model: Model, form: Form, field_index: int, value: bool, *,
                card: str) -> Form | Refusal:
    """Apply a pressed Yes / No button of a bool input."""
    target = _field_at(model, field_index)
    if target is None or target.type != "bool":
        return Refusal("rule-stale")
    return _accept(model, form, target, value, card=card)


def toggle(model: Model, form: Form, field_index: int, *, card: str) -> Form | Refusal:
    """Flip a bool input on the card (from its current value: set or default)."""
    target = _field_at(model, field_index)
    if target is None or target.type != "bool":
        return Refusal("rule-stale")
    now = effective(model, form).get(target.name)
    return _changed(form, {**form.values, target.name: not bool(now)}, card=card)


def open_field(model: Model, form: Form, field_index: int) -> Form | Refusal:
    """Ask for a card input (an enum's buttons, a typed value or files)."""
    target = _field_at(model, field_index)
    if target is None or target.name not in {f.name for f in card_fields(model)}:
        return Refusal("rule-stale")
    return replace(form, asking=target.name)


def reset(model: Model, form: Form, *, card: str) -> Form | Refusal:
    """Forget the value of the input being asked from the card (back to its default)."""
    target = current_field(model, form)
    if target is None or target.name not in {f.name for f in card_fields(model)}:
        return Refusal("rule-stale")
    values = {name: value for name, value in form.values.items() if name != target.name}
    return _changed(replace(form, asking=None), values, card=card)


def back(model: Model, form: Form) -> Form | Refusal:
    """Leave a card input unchanged and show the card again."""
    if missing(model, form):
        return Refusal("rule-stale")
    return replace(form, asking=None)


def finish_items(model: Model, form: Form, *, card: str) -> Form | Refusal:
    """End collecting files for the array being asked (Done)."""
    target = current_field(model, form)
    if target is None or target.type != "array":
        return Refusal("rule-stale")
    if target.required and _unset(form.values.get(target.name)):
        return Refusal("rule-items-min", {"field": target.name})
    return _advance(model, replace(form, asking=None, card=card))


def _accept(model: Model, form: Form, target: InputField, value: object, *,
            card: str) -> Form | Refusal:
    if target.type != "array":
        return _advance(model, _changed(form, {**form.values, target.name: value}, card=card))
    items = list(form.values.get(target.name) or [])
    limit = item_limit(target)
    if len(items) >= limit:
        return Refusal("rule-max-items", {"field": target.name, "max": limit})
    items.append(value)
    changed = _changed(replace(form, asking=target.name),
                       {**form.values, target.name: items}, card=card)
    # A full array moves on by itself; otherwise the user adds more or presses Done.
    return _advance(model, changed) if len(items) >= limit else changed


def _changed(form: Form, values: Mapping[str, Any], *, card: str) -> Form:
    return replace(form, values=dict(values), card=card)


def _advance(model: Model, form: Form) -> Form:
    """Ask the next missing input, or show the card when none is missing."""
    todo = missing(model, replace(form, asking=None))
    return replace(form, asking=todo[0].name if todo else None)


def _field_at(model: Model, index: int) -> InputField | None:
    return model.inputs[index] if 0 <= index < len(model.inputs) else None


def _unset(value: object) -> bool:
    return value is None or value == [] or value == ""
