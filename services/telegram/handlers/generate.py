"""The generation form in the chat: ask a model's inputs, show the card, request the job.

Screens come from the form engine (`services.telegram.forms`); this module only turns
updates into engine steps and screens into Telegram messages. The form lives in the FSM
(state `GenerateForm.filling`, data `form`), keyed per chat.

Flow: Generate on a model card (or plain text at the menu: the quick path, with the user's
last model or the free `z-image`) -> one question per required input -> the card (every
parameter with its default, each tappable; the price on the Generate button follows the
SKU; balance after; "charged only on success") -> Generate -> `Generations.request`.

The card becomes the job's status message: its message id is stored with the job (same
transaction), the card is edited to "queued" and noted on the StatusBoard, and from then on
the leader's loops edit it (services/generation/status_messages.py). `open_again` is the one
implementation of Repeat (a new card with an earlier job's model and parameters) and Change
parameters (the same form, its first question asked again), for the buttons under a result
and for history.

Idempotency: the job's key is `gen:<chat>:<card>`, the card id being the update that last
changed the form (see engine). A re-run of the Generate update and a double tap of one card
carry the same card, so the second finds the Duplicate; after Created only the state goes
back to the menu and the form stays in the data, so late taps of its card still find it.
Why not the callback query id: two taps are two queries with two ids, which would make two
jobs.

Crash analysis (at-least-once): every step writes only the FSM (its data, and the state
when it changes; each a fenced write) and then replies; a re-run after a crash repeats the
same step on the same data (the card id is the update's, so the same too) and says the same
again. Generate writes the job and its hold in one fenced unit (Generations.request) before
touching the FSM: a crash before its commit leaves nothing; after it, the re-run finds the
Duplicate and the state is moved to the menu then.

Cost per step (the pool is small, so transactions are what latency queues on): a question
or a card change is one FSM write (state and form together); the form is read from the
leader's FSM data cache; Generate is the job's transaction plus the state write.
"""

from __future__ import annotations

import logging
import math

from aiogram import F, Router
from aiogram.filters import Command, StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message, Update
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.keyboard import InlineKeyboardBuilder
from aiogram_i18n import I18nContext

from services.accounts import Accounts, Member
from services.catalog import Model
from services.delivery.status import StatusBoard
from services.generation import (
    ActiveJobsLimit,
    Created,
    Duplicate,
    FreeQuotaExhausted,
    InsufficientFunds,
    InvalidParams,
    Job,
    ModelUnavailable,
    PriceChanged,
)
from services.generation.service import Generations, RateLimited
from services.storefront import Storefront
from services.telegram.forms import engine, screens
from services.telegram.forms.engine import Form
from services.telegram.forms.screens import Quote, Screen, Verb, say
from services.telegram.forms.values import Refusal, Upload
from services.telegram.fsm_storage import set_state_and_update_data
from services.telegram.handlers.menu import outdated
from services.telegram.results import status_keyboard
from services.telegram.texts import rubles
from services.telegram.ui import GenerateCb, TopUpCb, add_menu_button, button, show

logger = logging.getLogger(__name__)
router = Router(name=__name__)

# The free model the quick path uses for users who never generated.
QUICK_DEFAULT_MODEL_ID = "z-image"
# The FSM data key of the form (other features keep their own keys beside it: update_data,
# never set_data).
FORM_KEY = "form"


class GenerateForm(StatesGroup):
    """The chat is filling a generation form."""

    filling = State()


# A button's two small numbers (an input's index, an enum value's index) travel as one.
ARG_BASE = 1000


class FormPress(CallbackData, prefix="gf"):
    """A button of a form screen: a verb on the card it was shown with (an update id), and
    its numbers as `a * ARG_BASE + b`."""

    verb: Verb
    card: int
    arg: int = 0

    @property
    def a(self) -> int:
        """Return the button's first number (an input's index)."""
        return self.arg // ARG_BASE

    @property
    def b(self) -> int:
        """Return the button's second number (an enum value's index)."""
        return self.arg % ARG_BASE


@router.callback_query(GenerateCb.filter())
async def start_form(query: CallbackQuery, callback_data: GenerateCb, state: FSMContext,
                     i18n: I18nContext, member: Member, storefront: Storefront,
                     accounts: Accounts, generations: Generations,
                     callback_answer: CallbackAnswer, event_update: Update) -> None:
    """Open a new form for a visible model (a form in progress is replaced)."""
    listing = (await storefront.shelf()).listing(callback_data.model)
    if listing is None:
        await outdated(query, i18n, member, storefront, accounts, callback_answer, state)
        return
    form = engine.start(listing.model, card=_card_id(event_update))
    await _store(state, form)
    await show(query, *await _render(i18n, member, generations, listing.model, form))


@router.message(StateFilter(None), F.text, ~F.text.startswith("/"))
async def quick_path(message: Message, state: FSMContext, i18n: I18nContext, member: Member,
                     accounts: Accounts, generations: Generations,
                     event_update: Update) -> None:
    """Offer to generate plain text with the user's last model (or the free default)."""
    assert message.text is not None
    last = await accounts.last_model(member.user_id)
    model = generations.catalog.get(last or QUICK_DEFAULT_MODEL_ID)
    if model is None or engine.prompt_field(model) is None:
        model = generations.catalog[QUICK_DEFAULT_MODEL_ID]
    step = engine.start_with_prompt(model, message.text, card=_card_id(event_update))
    if isinstance(step, Refusal):
        await message.answer(screens.refusal_text(i18n.get, model, step))
        return
    await _store(state, step)
    text, markup = await _render(i18n, member, generations, model, step)
    if step.asking is None:
        text = say(i18n.get, "quick-offer", model=model.title.get(i18n.locale)) + "\n\n" + text
    await message.answer(text, reply_markup=markup)


@router.message(GenerateForm.filling, Command("cancel"))
async def cancel_command(message: Message, state: FSMContext, i18n: I18nContext) -> None:
    """Drop the form."""
    await _drop(state)
    await message.answer(say(i18n.get, "cancelled"))


@router.message(GenerateForm.filling, F.text, ~F.text.startswith("/"))
async def typed(message: Message, state: FSMContext, i18n: I18nContext, member: Member,
                generations: Generations, event_update: Update) -> None:
    """Apply typed text to the input being asked (on the card: the prompt)."""
    assert message.text is not None
    loaded = await _form_for_message(message, state, i18n, generations)
    if loaded is None:
        return
    model, form = loaded
    step = engine.type_text(model, form, message.text, card=_card_id(event_update))
    await _after_message(message, state, i18n, member, generations, model, form, step)


@router.message(GenerateForm.filling, F.photo | F.document | F.video | F.animation | F.audio
                | F.voice)
async def uploaded(message: Message, state: FSMContext, i18n: I18nContext, member: Member,
                   generations: Generations, event_update: Update) -> None:
    """Apply an uploaded file to the media input being asked."""
    loaded = await _form_for_message(message, state, i18n, generations)
    if loaded is None:
        return
    model, form = loaded
    step = engine.send_upload(model, form, _upload_of(message), card=_card_id(event_update))
    await _after_message(message, state, i18n, member, generations, model, form, step)


@router.callback_query(FormPress.filter())
async def pressed(query: CallbackQuery, callback_data: FormPress, state: FSMContext,
                  i18n: I18nContext, member: Member, generations: Generations,
                  callback_answer: CallbackAnswer, event_update: Update,
                  status_board: StatusBoard | None = None) -> None:
    """Apply a form button: pick, toggle, open, reset, done, back, cancel or generate."""
    loaded = await _load(state, generations)
    if loaded is None:
        callback_answer.text = say(i18n.get, "no-form")
        callback_answer.show_alert = True
        return
    model, form = loaded
    if str(callback_data.card) != form.card:
        callback_answer.text = say(i18n.get, "rule-stale")
        await show(query, *await _render(i18n, member, generations, model, form))
        return
    if callback_data.verb is Verb.CANCEL:
        await _drop(state)
        await show(query, say(i18n.get, "cancelled"), _menu_only(i18n))
        return
    if callback_data.verb is Verb.GO:
        await _generate(query, i18n, member, generations, callback_answer, form, state,
                        status_board, shown_price_kop=callback_data.a)
        return
    step = _press(model, form, callback_data, _card_id(event_update))
    if isinstance(step, Refusal):
        callback_answer.text = screens.refusal_text(i18n.get, model, step)
        callback_answer.show_alert = True
        return
    await _store(state, step)
    await show(query, *await _render(i18n, member, generations, model, step))


def _press(model: Model, form: Form, press: FormPress, card: str) -> Form | Refusal:
    """Return the engine step a button stands for."""
    match press.verb:
        case Verb.PICK:
            return engine.pick(model, form, press.a, press.b, card=card)
        case Verb.YES | Verb.NO:
            return engine.choose_bool(model, form, press.a, press.verb is Verb.YES, card=card)
        case Verb.TOGGLE:
            return engine.toggle(model, form, press.a, card=card)
        case Verb.OPEN:
            return engine.open_field(model, form, press.a)
        case Verb.RESET:
            return engine.reset(model, form, card=card)
        case Verb.DONE:
            return engine.finish_items(model, form, card=card)
        case Verb.BACK:
            return engine.back(model, form)
    return Refusal("rule-stale")


async def _generate(query: CallbackQuery, i18n: I18nContext, member: Member,
                    generations: Generations, answer: CallbackAnswer, form: Form,
                    state: FSMContext, board: StatusBoard | None, *,
                    shown_price_kop: int) -> None:
    """Request the card's job at the price it showed; a card that already made its job
    finds it (Duplicate); a price changed since is refused with the new card."""
    model = generations.catalog.get(form.model_id)
    message = query.message
    if model is None or message is None or engine.missing(model, form):
        answer.text = say(i18n.get, "rule-stale")
        return
    chat_id = message.chat.id
    outcome = await generations.request(
        user_id=member.user_id, chat_id=chat_id, model_id=model.id,
        params=engine.params(form), idempotency_key=f"gen:{chat_id}:{form.card}",
        shown_price_kop=shown_price_kop, status_message_id=message.message_id)
    title = model.title.get(i18n.locale)
    queued = i18n.get("status-queued", model=title)
    match outcome:
        case Created(job):
            # Back at the menu (plain text is the quick path again); the form stays in the
            # data, so a late tap of this card finds its job.
            await state.set_state(None)
            logger.info("generation_confirmed", extra={"job_id": job.id, "model_id": model.id})
            await _show_queued(query, queued, status_keyboard(i18n.locale, job.id), board)
        case Duplicate(job):
            # A double tap, or the re-run of a press whose reply a crash cut off.
            answer.text = say(i18n.get, "duplicate")
            if await state.get_state() is not None:
                await state.set_state(None)
                await _show_queued(query, queued, status_keyboard(i18n.locale, job.id), board)
        case InsufficientFunds(shortfall_kop=shortfall):
            kb = InlineKeyboardBuilder()
            kb.row(button(say(i18n.get, "button-topup"), TopUpCb()))
            await message.answer(say(i18n.get, "funds", shortfall=rubles(shortfall)),
                                 reply_markup=add_menu_button(kb, i18n).as_markup())
        case ActiveJobsLimit(limit=limit):
            answer.text = say(i18n.get, "active-limit", limit=limit)
            answer.show_alert = True
        case FreeQuotaExhausted(limit=limit):
            answer.text = say(i18n.get, "free-quota", limit=limit)
            answer.show_alert = True
        case RateLimited(retry_after_s=wait_s):
            answer.text = say(i18n.get, "rate-limited", seconds=math.ceil(wait_s))
            answer.show_alert = True
        case PriceChanged(price_kop=price):
            # Nothing was written; the same card (same key) re-shown with the live price.
            text, markup = await _render(i18n, member, generations, model, form)
            changed = say(i18n.get, "price-changed", model=title,
                          price=say(i18n.get, "free") if price == 0 else rubles(price))
            await show(query, changed + "\n\n" + text, markup)
        case ModelUnavailable():
            await _drop(state)
            await show(query, say(i18n.get, "model-unavailable", model=title),
                       _menu_only(i18n))
        case InvalidParams(field=name, rule=rule):
            await message.answer(screens.refusal_text(
                i18n.get, model, Refusal("rule-invalid", {"field": name, "reason": rule})))


async def _show_queued(query: CallbackQuery, text: str, markup: InlineKeyboardMarkup,
                       board: StatusBoard | None) -> None:
    """Turn the card into the job's status message, and start its edit interval there."""
    await show(query, text, markup)
    if board is not None and query.message is not None:
        board.note(query.message.chat.id, query.message.message_id, text)


async def open_again(target: Message | CallbackQuery, i18n: I18nContext, member: Member,
                     generations: Generations, storefront: Storefront, state: FSMContext,
                     job: Job, *, change: bool, card: str) -> bool:
    """Open a form with a job's model and parameters: the confirm card (Repeat), or its first
    question again (change); False when the model is no longer on sale (outdated).

    Nothing is requested here: the card's Generate makes the new job under its own card id,
    so a Repeat is never a charge by itself.
    """
    listing = (await storefront.shelf()).by_id(job.model_id)
    if listing is None:
        return False
    form = engine.prefilled(listing.model, job.params, card=card, ask_first=change)
    await _store(state, form)
    await show(target, *await _render(i18n, member, generations, listing.model, form))
    return True


async def _form_for_message(message: Message, state: FSMContext, i18n: I18nContext,
                            generations: Generations) -> tuple[Model, Form] | None:
    """Return the form a message answers; None (the stale state dropped, the user told)
    when there is none."""
    loaded = await _load(state, generations)
    if loaded is None:
        await _drop(state)
        await message.answer(say(i18n.get, "no-form"))
    return loaded


async def _after_message(message: Message, state: FSMContext, i18n: I18nContext,
                         member: Member, generations: Generations, model: Model, form: Form,
                         step: Form | Refusal) -> None:
    """Store a step made from a message and show what comes next, or re-ask the same."""
    if isinstance(step, Refusal):
        text, markup = await _render(i18n, member, generations, model, form)
        await message.answer(screens.refusal_text(i18n.get, model, step) + "\n\n" + text,
                             reply_markup=markup)
        return
    await _store(state, step)
    text, markup = await _render(i18n, member, generations, model, step)
    await message.answer(text, reply_markup=markup)


async def _render(i18n: I18nContext, member: Member, generations: Generations, model: Model,
                  form: Form) -> tuple[str, InlineKeyboardMarkup]:
    """Return the question being asked, or the card priced for the member, as a message."""
    if form.asking is not None:
        screen = screens.ask(i18n.get, i18n.locale, model, form)
    else:
        price = await generations.price(model.id, engine.params(form))
        balance = (await member.wallet()).balance_kop
        quote = (Quote(0, free=False, balance_kop=balance) if isinstance(price, InvalidParams)
                 else Quote(price.price_kop, free=price.free, balance_kop=balance))
        screen = screens.card(i18n.get, i18n.locale, model, form, quote, rubles)
    return screen.text, _keyboard(i18n, screen, form.card)


def _keyboard(i18n: I18nContext, screen: Screen, card: str) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    for row in screen.rows:
        kb.row(*(button(b.label, FormPress(verb=b.action.verb, card=int(card),
                                           arg=b.action.a * ARG_BASE + b.action.b))
                 for b in row))
    return add_menu_button(kb, i18n).as_markup()


def _menu_only(i18n: I18nContext) -> InlineKeyboardMarkup:
    return add_menu_button(InlineKeyboardBuilder(), i18n).as_markup()


async def _load(state: FSMContext, generations: Generations) -> tuple[Model, Form] | None:
    stored = (await state.get_data()).get(FORM_KEY)
    if not stored:
        return None
    form = Form.from_data(stored)
    model = generations.catalog.get(form.model_id)
    return (model, form) if model is not None else None


async def _store(state: FSMContext, form: Form) -> None:
    # State and form in one write (one fenced transaction), not two.
    await set_state_and_update_data(state, GenerateForm.filling, {FORM_KEY: form.to_data()})


async def _drop(state: FSMContext) -> None:
    await set_state_and_update_data(state, None, {FORM_KEY: None})


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
