"""The generation form in the chat: ask a model's inputs, show the card, request the job.

Screens come from the form engine (`services.telegram.forms`); this module only turns
updates into engine steps and screens into Telegram messages. The form lives in the FSM
(state `GenerateForm.filling`, data `form`), keyed per chat.

Flow: Generate on a model card (or plain text at the menu: the quick path, with the user's
last model or the free `z-image`) -> one question per required input -> the card (every
parameter with its default, each tappable; the price on the Generate button follows the
SKU; balance after; "charged only on success") -> Generate -> `Generations.request`.

Idempotency: the job's key is `gen:<chat>:<card>`, the card id being the update that last
changed the form (see engine). A re-run of the Generate update and a double tap of one card
carry the same card, so the second finds the Duplicate; after Created the card is kept as
`confirmed`, so its late taps still find it.

Crash analysis (at-least-once): every step writes only the FSM (one fenced write) and then
replies; a re-run after a crash repeats the same step on the same data and says the same
again. Generate writes the job in one fenced unit (Generations.request) before touching the
FSM: a crash between the two leaves the form open, and the re-run finds the Duplicate.
"""

from __future__ import annotations

import contextlib
import logging
import math
from typing import Any

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
)
from aiogram_i18n import I18nContext

from services.accounts import Accounts
from services.catalog import Model
from services.generation import (
    ActiveJobsLimit,
    Created,
    Duplicate,
    FreeQuotaExhausted,
    InsufficientFunds,
    InvalidParams,
)
from services.generation.service import Generations, RateLimited
from services.telegram import texts
from services.telegram.forms import engine, screens
from services.telegram.forms.engine import Form
from services.telegram.forms.screens import Action, Quote, Screen, Verb
from services.telegram.forms.values import Refusal, Upload

logger = logging.getLogger(__name__)
router = Router(name=__name__)

# The free model the quick path uses for users who never generated.
QUICK_DEFAULT_MODEL_ID = "z-image"
FORM_KEY = "form"
CONFIRMED_KEY = "confirmed"


class GenerateForm(StatesGroup):
    """The chat is filling a generation form."""

    filling = State()


class StartForm(CallbackData, prefix="gs"):
    """The Generate button of a model card: start the form for this model."""

    model: str


class FormPress(CallbackData, prefix="gf"):
    """A button of a form screen: a verb on the card it was shown with."""

    verb: Verb
    card: str
    a: int = 0
    b: int = 0


@router.callback_query(StartForm.filter())
async def start_form(query: CallbackQuery, callback_data: StartForm, state: FSMContext,
                     i18n: I18nContext, generations: Generations, accounts: Accounts,
                     event_update: Update) -> None:
    """Open a new form for the model (any form in progress is dropped)."""
    model = generations.catalog.get(callback_data.model)
    if model is None or not isinstance(query.message, Message):
        await query.answer(i18n.get("gen-no-form"))
        return
    form = engine.start(model, card=_card_id(event_update))
    await _store(state, form)
    await query.answer()
    await _send(query.message, await _screen(i18n, generations, accounts, query.from_user.id,
                                             model, form), form.card)


@router.message(StateFilter(None), F.text, ~F.text.startswith("/"))
async def quick_path(message: Message, state: FSMContext, i18n: I18nContext,
                     generations: Generations, accounts: Accounts,
                     event_update: Update) -> None:
    """Offer to generate plain text with the user's last model (or the free default)."""
    if message.from_user is None or message.text is None:
        return
    model_id = await generations.last_model(message.from_user.id) or QUICK_DEFAULT_MODEL_ID
    model = generations.catalog[model_id]
    if engine.prompt_field(model) is None:
        model = generations.catalog[QUICK_DEFAULT_MODEL_ID]
    form = engine.start(model, card=_card_id(event_update))
    step = engine.type_text(model, form, message.text, card=form.card)
    if isinstance(step, Refusal):
        await message.answer(screens.refusal_text(i18n.get, model, step))
        return
    await _store(state, step)
    screen = await _screen(i18n, generations, accounts, message.from_user.id, model, step)
    if step.asking is None:
        screen = Screen(i18n.get("quick-offer", model=model.title.get(i18n.locale)) + "\n\n"
                        + screen.text, screen.rows)
    await _send(message, screen, step.card)


@router.message(GenerateForm.filling, Command("cancel"))
async def cancel_command(message: Message, state: FSMContext, i18n: I18nContext) -> None:
    """Drop the form."""
    await _drop(state)
    await message.answer(i18n.get("gen-cancelled"))


@router.message(GenerateForm.filling, F.text, ~F.text.startswith("/"))
async def typed(message: Message, state: FSMContext, i18n: I18nContext,
                generations: Generations, accounts: Accounts, event_update: Update) -> None:
    """Apply typed text to the input being asked (on the card: the prompt)."""
    loaded = await _load(state, generations)
    if loaded is None or message.from_user is None or message.text is None:
        return
    model, form = loaded
    step = engine.type_text(model, form, message.text, card=_card_id(event_update))
    await _after_message(message, state, i18n, generations, accounts, model, form, step)


@router.message(GenerateForm.filling, F.photo | F.document | F.video | F.animation | F.audio
                | F.voice)
async def uploaded(message: Message, state: FSMContext, i18n: I18nContext,
                   generations: Generations, accounts: Accounts, event_update: Update) -> None:
    """Apply an uploaded file to the media input being asked."""
    loaded = await _load(state, generations)
    if loaded is None or message.from_user is None:
        return
    model, form = loaded
    step = engine.send_upload(model, form, _upload_of(message), card=_card_id(event_update))
    await _after_message(message, state, i18n, generations, accounts, model, form, step)


@router.callback_query(FormPress.filter())
async def pressed(query: CallbackQuery, callback_data: FormPress, state: FSMContext,
                  i18n: I18nContext, generations: Generations, accounts: Accounts,
                  event_update: Update) -> None:
    """Apply a form button: pick, toggle, open, reset, done, back, cancel or generate."""
    message = query.message if isinstance(query.message, Message) else None
    data = await state.get_data()
    confirmed = data.get(CONFIRMED_KEY)
    if callback_data.verb is Verb.GO and confirmed and confirmed["card"] == callback_data.card:
        await _generate(query, i18n, generations, Form.from_data(confirmed), state=None)
        return
    loaded = await _load(state, generations, data)
    if loaded is None or message is None:
        await query.answer(i18n.get("gen-no-form"), show_alert=True)
        return
    model, form = loaded
    if callback_data.card != form.card:
        await query.answer(i18n.get("rule-stale"))
        await _send(message, await _screen(i18n, generations, accounts, query.from_user.id,
                                           model, form), form.card)
        return
    verb, card = callback_data.verb, _card_id(event_update)
    if verb is Verb.CANCEL:
        await _drop(state)
        await query.answer()
        await _edit(message, Screen(i18n.get("gen-cancelled")), form.card)
        return
    if verb is Verb.GO:
        await _generate(query, i18n, generations, form, state=state)
        return
    step = _press(model, form, Action(verb, callback_data.a, callback_data.b), card)
    if isinstance(step, Refusal):
        await query.answer(screens.refusal_text(i18n.get, model, step)[:200], show_alert=True)
        return
    await _store(state, step)
    await query.answer()
    await _edit(message, await _screen(i18n, generations, accounts, query.from_user.id, model,
                                       step), step.card)


def _press(model: Model, form: Form, action: Action, card: str) -> Form | Refusal:
    """Return the engine step a button stands for."""
    match action.verb:
        case Verb.PICK:
            return engine.pick(model, form, action.a, action.b, card=card)
        case Verb.YES | Verb.NO:
            return engine.choose_bool(model, form, action.a, action.verb is Verb.YES, card=card)
        case Verb.TOGGLE:
            return engine.toggle(model, form, action.a, card=card)
        case Verb.OPEN:
            return engine.open_field(model, form, action.a)
        case Verb.RESET:
            return engine.reset(model, form, card=card)
        case Verb.DONE:
            return engine.finish_items(model, form, card=card)
        case Verb.BACK:
            return engine.back(model, form)
    return Refusal("rule-stale")


async def _generate(query: CallbackQuery, i18n: I18nContext, generations: Generations,
                    form: Form, *, state: FSMContext | None) -> None:
    """Request the job of the card (state None: the card was already confirmed)."""
    message = query.message if isinstance(query.message, Message) else None
    model = generations.catalog.get(form.model_id)
    if model is None or message is None or engine.missing(model, form):
        await query.answer(i18n.get("rule-stale"))
        return
    outcome = await generations.request(
        user_id=query.from_user.id, chat_id=message.chat.id, model_id=model.id,
        params=engine.params(form), idempotency_key=f"gen:{message.chat.id}:{form.card}")
    title = model.title.get(i18n.locale)
    match outcome:
        case Created(job):
            if state is not None:
                await state.set_state(None)
                await state.set_data({CONFIRMED_KEY: form.to_data()})
            await query.answer()
            logger.info("generation_confirmed", extra={"job_id": job.id,
                                                       "model_id": model.id})
            await _edit(message, Screen(i18n.get("gen-queued", model=title)), form.card)
        case Duplicate():
            await query.answer(i18n.get("gen-duplicate"))
        case InsufficientFunds(shortfall_kop=shortfall):
            await query.answer()
            await message.answer(
                i18n.get("gen-funds", shortfall=texts.rubles(shortfall)),
                reply_markup=_topup_keyboard(i18n))
        case ActiveJobsLimit(limit=limit):
            await query.answer(i18n.get("gen-active-limit", limit=limit), show_alert=True)
        case FreeQuotaExhausted(limit=limit):
            await query.answer(i18n.get("gen-free-quota", limit=limit), show_alert=True)
        case RateLimited(retry_after_s=wait_s):
            await query.answer(i18n.get("gen-rate-limited", seconds=math.ceil(wait_s)),
                               show_alert=True)
        case InvalidParams(field=name, rule=rule):
            await query.answer()
            await message.answer(screens.refusal_text(
                i18n.get, model, Refusal("rule-invalid", {"field": name, "reason": rule})))


async def _after_message(message: Message, state: FSMContext, i18n: I18nContext,
                         generations: Generations, accounts: Accounts, model: Model,
                         form: Form, step: Form | Refusal) -> None:
    """Store a step made from a message and show what comes next, or re-ask the same."""
    assert message.from_user is not None
    if isinstance(step, Refusal):
        screen = await _screen(i18n, generations, accounts, message.from_user.id, model, form)
        await _send(message, Screen(screens.refusal_text(i18n.get, model, step) + "\n\n"
                                    + screen.text, screen.rows), form.card)
        return
    await _store(state, step)
    await _send(message, await _screen(i18n, generations, accounts, message.from_user.id,
                                       model, step), step.card)


async def _screen(i18n: I18nContext, generations: Generations, accounts: Accounts,
                  user_id: int, model: Model, form: Form) -> Screen:
    """Return the question being asked, or the card priced for the user."""
    if form.asking is not None:
        return screens.ask(i18n.get, i18n.locale, model, form)
    price = generations.price(model.id, engine.params(form))
    wallet = await accounts.wallet(user_id)
    balance = wallet.balance_kop if wallet is not None else 0
    if isinstance(price, InvalidParams):
        quote = Quote(price_kop=0, free=False, balance_kop=balance)
    else:
        quote = Quote(price_kop=price.price_kop, free=price.free, balance_kop=balance)
    return screens.card(i18n.get, i18n.locale, model, form, quote, texts.rubles)


async def _load(state: FSMContext, generations: Generations,
                data: dict[str, Any] | None = None) -> tuple[Model, Form] | None:
    stored = (data if data is not None else await state.get_data()).get(FORM_KEY)
    if not stored:
        return None
    form = Form.from_data(stored)
    model = generations.catalog.get(form.model_id)
    return (model, form) if model is not None else None


async def _store(state: FSMContext, form: Form) -> None:
    await state.set_state(GenerateForm.filling)
    await state.set_data({FORM_KEY: form.to_data()})


async def _drop(state: FSMContext) -> None:
    await state.clear()


def _card_id(update: Update) -> str:
    return str(update.update_id)


def _upload_of(message: Message) -> Upload:
    """Describe the file of a message (the largest size of a photo)."""
    if message.photo:
        size = message.photo[-1]
        return Upload("photo", size.file_id, size.file_size, "image/jpeg")
    for kind in ("video", "animation", "audio", "voice", "document"):
        media = getattr(message, kind)
        if media is not None:
            return Upload(kind, media.file_id, media.file_size, media.mime_type)
    raise ValueError("the message carries no file")


def _keyboard(screen: Screen, card: str) -> InlineKeyboardMarkup | None:
    if not screen.rows:
        return None
    return InlineKeyboardMarkup(inline_keyboard=[
        [InlineKeyboardButton(text=button.label, callback_data=FormPress(
            verb=button.action.verb, card=card, a=button.action.a,
            b=button.action.b).pack()) for button in row]
        for row in screen.rows])


def _topup_keyboard(i18n: I18nContext) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(
        text=i18n.get("button-topup"), callback_data="topup")]])


async def _send(message: Message, screen: Screen, card: str) -> None:
    await message.answer(screen.text, reply_markup=_keyboard(screen, card))


async def _edit(message: Message, screen: Screen, card: str) -> None:
    # Telegram refuses an edit that changes nothing (a re-run, or a repeated tap).
    with contextlib.suppress(TelegramBadRequest):
        await message.edit_text(screen.text, reply_markup=_keyboard(screen, card))
