"""The operators' console: /admin for ADMIN_ID users only.

Screens: pending payments (with payments' own decision buttons), user lookup (balance,
hold, jobs, ledger, payments) with a manual adjustment and job refunds, stats, models
(on/off and price overrides beside the catalog values), broadcast (compose, preview,
confirm; progress is edited by the sender), cluster (leader, term, instances, events).

Anyone else gets nothing: /admin falls through to the ordinary fallback (the operator
filter fails), and an old console button pressed by a non-operator is swallowed silently
(`ignore_stranger`: no text, no screen). Every change is keyed by its confirm press (the
confirm message's id), so a double press or a retried update applies it once.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from aiogram import Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message, TelegramObject
from aiogram.utils.keyboard import InlineKeyboardBuilder
from aiogram_i18n import I18nContext

from services.admin.service import Admin, AdminError, UserReport
from services.billing.ledger import InsufficientFunds
from services.generation.store import JobStatus
from services.payments.notices import AmendCb, ApproveCb, RejectCb
from services.telegram.texts import rubles
from services.telegram.ui import add_menu_button, button, leave_prompt, show

router = Router(name=__name__)

MODELS_PER_PAGE = 8
REASON_MAX_CHARS = 300
BROADCAST_MAX_CHARS = 4096
ADJUST_KEY = "admin_adjust"
BROADCAST_KEY = "admin_broadcast"
MODEL_KEY = "admin_model"


class Screen(StrEnum):
    """The console's screens and model actions (pressed through AdminCb)."""

    HOME = "home"            # the console's buttons
    QUEUE = "queue"          # pending payments
    USER = "user"            # ask for a user id or @username
    ADJUST = "adjust"        # ask for an adjustment of user `arg`
    REFUND = "refund"        # confirm the refund of job `arg`
    STATS = "stats"          # the figures
    MODELS = "models"        # page `arg` of the catalog's models
    MODEL = "model"          # the model at catalog index `arg`
    TOGGLE = "toggle"        # enable/disable model `arg`
    NOPRICE = "noprice"      # clear model `arg`'s price override
    PRICE = "price"          # ask for model `arg`'s price
    BROADCAST = "broadcast"  # ask for a broadcast's text
    CLUSTER = "cluster"      # leader, term, instances, events


class AdminCb(CallbackData, prefix="adm"):
    """Open a console screen (`arg`: the user, job, model index or page it is about)."""

    screen: Screen
    arg: int = 0


class AdjustOkCb(CallbackData, prefix="admadj"):
    """Confirm the adjustment composed on this message (amount and reason in the chat's data)."""

    user: int
    kop: int


class RefundOkCb(CallbackData, prefix="admref"):
    """Confirm the refund of a charged job."""

    job: int


class BroadcastOkCb(CallbackData, prefix="admbc"):
    """Confirm the broadcast previewed on this message."""


class AdminForm(StatesGroup):
    """The console's prompts."""

    lookup = State()     # a user id or @username is awaited
    adjust = State()     # "+100 reason" is awaited
    price = State()      # a model's price in roubles (or "-" to clear) is awaited
    broadcast = State()  # the broadcast text is awaited


async def operator(event: TelegramObject, admin: Admin) -> bool:
    """Pass only updates from an operator."""
    user = getattr(event, "from_user", None)
    return user is not None and admin.is_operator(user.id)


def _home(i18n: I18nContext) -> InlineKeyboardBuilder:
    kb = InlineKeyboardBuilder()
    kb.row(button(i18n.get("admin-btn-queue"), AdminCb(screen=Screen.QUEUE)),
           button(i18n.get("admin-btn-user"), AdminCb(screen=Screen.USER)))
    kb.row(button(i18n.get("admin-btn-stats"), AdminCb(screen=Screen.STATS)),
           button(i18n.get("admin-btn-models"), AdminCb(screen=Screen.MODELS)))
    kb.row(button(i18n.get("admin-btn-broadcast"), AdminCb(screen=Screen.BROADCAST)),
           button(i18n.get("admin-btn-cluster"), AdminCb(screen=Screen.CLUSTER)))
    return add_menu_button(kb, i18n)


def _back(i18n: I18nContext,
          *extra: Sequence[tuple[str, CallbackData]]) -> InlineKeyboardBuilder:
    kb = InlineKeyboardBuilder()
    for row in extra:
        kb.row(*(button(text, cb) for text, cb in row))
    kb.row(button(i18n.get("admin-btn-home"), AdminCb(screen=Screen.HOME)))
    return add_menu_button(kb, i18n)


@router.message(Command("admin"), operator)
async def admin_home(message: Message, i18n: I18nContext, state: FSMContext) -> None:
    """Show the console."""
    await leave_prompt(state)
    await show(message, i18n.get("admin-home"), _home(i18n).as_markup())


@router.callback_query(AdminCb.filter(), operator)
async def open_screen(query: CallbackQuery, callback_data: AdminCb, i18n: I18nContext,
                      admin: Admin, state: FSMContext) -> None:
    """Open the pressed console screen."""
    await leave_prompt(state)
    screen, arg = callback_data.screen, callback_data.arg
    if screen is Screen.QUEUE:
        await _queue(query, i18n, admin)
    elif screen is Screen.USER:
        await state.set_state(AdminForm.lookup)
        await show(query, i18n.get("admin-user-ask"), _back(i18n).as_markup())
    elif screen is Screen.ADJUST:
        await state.set_state(AdminForm.adjust)
        await state.update_data({ADJUST_KEY: {"user": arg}})
        await show(query, i18n.get("admin-adjust-ask", user=str(arg)), _back(i18n).as_markup())
    elif screen is Screen.REFUND:
        await show(query, i18n.get("admin-refund-confirm", job=str(arg)), _back(
            i18n, [(i18n.get("admin-btn-confirm"), RefundOkCb(job=arg))]).as_markup())
    elif screen is Screen.STATS:
        await _stats(query, i18n, admin)
    elif screen is Screen.MODELS:
        await _models(query, i18n, admin, page=arg)
    elif screen in (Screen.MODEL, Screen.TOGGLE, Screen.NOPRICE):
        await _model(query, i18n, admin, screen=screen, index=arg)
    elif screen is Screen.PRICE:
        await state.set_state(AdminForm.price)
        await state.update_data({MODEL_KEY: arg})
        await show(query, i18n.get("admin-price-ask"), _back(i18n).as_markup())
    elif screen is Screen.BROADCAST:
        await state.set_state(AdminForm.broadcast)
        await show(query, i18n.get("admin-broadcast-ask"), _back(i18n).as_markup())
    elif screen is Screen.CLUSTER:
        await _cluster(query, i18n, admin)
    else:
        await show(query, i18n.get("admin-home"), _home(i18n).as_markup())


async def _queue(query: CallbackQuery, i18n: I18nContext, admin: Admin) -> None:
    pending = await admin.pending_payments()
    lines = [i18n.get("admin-queue-line", id=str(p.id), user=str(p.user_id),
                      amount=rubles(p.amount_kop), method=str(p.method),
                      date=f"{p.created_at:%Y-%m-%d %H:%M}") for p in pending]
    rows = [[(i18n.get("admin-btn-approve", id=str(p.id)), ApproveCb(payment=p.id)),
             (i18n.get("admin-btn-amend", id=str(p.id)), AmendCb(payment=p.id)),
             (i18n.get("admin-btn-reject", id=str(p.id)), RejectCb(payment=p.id))]
            for p in pending]
    text = "\n".join([i18n.get("admin-queue-title", count=str(len(pending))), *lines])
    await show(query, text, _back(i18n, *rows).as_markup())


@router.message(AdminForm.lookup, operator)
async def lookup(message: Message, i18n: I18nContext, admin: Admin,
                 state: FSMContext) -> None:
    """Show the user card of the id or @username sent."""
    report = await admin.find_user(message.text or "")
    if report is None:
        await show(message, i18n.get("admin-user-none"), _back(i18n).as_markup())
        return
    await state.set_state(None)
    await show(message, _card(i18n, report), _card_buttons(i18n, report).as_markup())


def _card(i18n: I18nContext, report: UserReport) -> str:
    card = report.card
    lines = [i18n.get("admin-user-card", id=str(card.user_id),
                      name=card.first_name or "-", username=card.username or "-",
                      balance=rubles(card.balance_kop), hold=rubles(card.hold_kop))]
    lines.append(i18n.get("admin-user-jobs"))
    lines += [i18n.get("admin-user-job", id=str(j.id), model=j.model_id, status=j.status,
                       price=rubles(j.price_kop)) for j in report.jobs] or ["-"]
    lines.append(i18n.get("admin-user-ledger"))
    lines += [i18n.get("admin-user-entry", kind=str(e.kind), amount=rubles(e.balance_delta_kop),
                       date=f"{e.created_at:%Y-%m-%d %H:%M}") for e in report.ledger] or ["-"]
    lines.append(i18n.get("admin-user-payments"))
    lines += [i18n.get("admin-user-payment", id=str(p.id), method=p.method, status=p.status,
                       amount=rubles(p.amount_kop)) for p in report.payments] or ["-"]
    return "\n".join(lines)


def _card_buttons(i18n: I18nContext, report: UserReport) -> InlineKeyboardBuilder:
    user = report.card.user_id
    rows = [[(i18n.get("admin-btn-adjust"), AdminCb(screen=Screen.ADJUST, arg=user))]]
    rows += [[(i18n.get("admin-btn-refund", id=str(j.id)),
               AdminCb(screen=Screen.REFUND, arg=j.id))]
             for j in report.jobs if j.status == JobStatus.SUCCEEDED and j.price_kop > 0]
    return _back(i18n, *rows)


@router.message(AdminForm.adjust, operator)
async def compose_adjustment(message: Message, i18n: I18nContext, state: FSMContext) -> None:
    """Read "+100 reason" and show the confirm step."""
    user = ((await state.get_data()).get(ADJUST_KEY) or {}).get("user")
    amount, _, reason = (message.text or "").strip().partition(" ")
    kop = _kopecks(amount)
    if user is None or kop is None or kop == 0 or not reason.strip():
        await show(message, i18n.get("admin-adjust-bad"), _back(i18n).as_markup())
        return
    reason = reason.strip()[:REASON_MAX_CHARS]
    await state.set_state(None)
    # Kept after the confirm: a second press of the same confirm finds the same adjustment.
    await state.update_data({ADJUST_KEY: {"user": user, "kop": kop, "reason": reason}})
    await show(message, i18n.get("admin-adjust-confirm", user=str(user), amount=rubles(kop),
                                 reason=reason),
               _back(i18n, [(i18n.get("admin-btn-confirm"),
                             AdjustOkCb(user=user, kop=kop))]).as_markup())


@router.callback_query(AdjustOkCb.filter(), operator)
async def confirm_adjustment(query: CallbackQuery, callback_data: AdjustOkCb, i18n: I18nContext,
                             admin: Admin, state: FSMContext) -> None:
    """Apply the adjustment once per confirm press (keyed by the confirm message)."""
    data = (await state.get_data()).get(ADJUST_KEY) or {}
    if data.get("user") != callback_data.user or data.get("kop") != callback_data.kop \
            or query.message is None:
        await show(query, i18n.get("admin-outdated"), _back(i18n).as_markup())
        return
    key = f"{query.message.chat.id}:{query.message.message_id}"
    try:
        result = await admin.adjust(callback_data.user, callback_data.kop,
                                    reason=data["reason"], operator_id=query.from_user.id,
                                    key=key)
    except InsufficientFunds:
        await show(query, i18n.get("admin-adjust-funds"), _back(i18n).as_markup())
        return
    except AdminError as exc:
        await show(query, refused(i18n, exc), _back(i18n).as_markup())
        return
    balance = rubles(result.wallet.balance_kop) if result.wallet else "-"
    key_text = "admin-adjust-done" if result.applied else "admin-adjust-again"
    await show(query, i18n.get(key_text, user=str(callback_data.user), balance=balance),
               _back(i18n).as_markup())


@router.callback_query(RefundOkCb.filter(), operator)
async def confirm_refund(query: CallbackQuery, callback_data: RefundOkCb, i18n: I18nContext,
                         admin: Admin) -> None:
    """Credit a charged job back (once per job)."""
    try:
        result = await admin.refund_job(callback_data.job, operator_id=query.from_user.id)
    except AdminError as exc:
        await show(query, refused(i18n, exc), _back(i18n).as_markup())
        return
    balance = rubles(result.wallet.balance_kop) if result.wallet else "-"
    key_text = "admin-refund-done" if result.applied else "admin-refund-again"
    await show(query, i18n.get(key_text, job=str(callback_data.job), balance=balance),
               _back(i18n).as_markup())


async def _stats(query: CallbackQuery, i18n: I18nContext, admin: Admin) -> None:
    s = await admin.stats()
    lines = [i18n.get("admin-stats", total=str(s.users["total"]), new=str(s.users["new_1d"]),
                      active1=str(s.users["active_1d"]), active7=str(s.users["active_7d"]),
                      active30=str(s.users["active_30d"]), topups=rubles(s.topups_kop),
                      revenue=rubles(s.revenue_kop), cost=rubles(s.kie_cost_kop),
                      margin=rubles(s.revenue_kop - s.kie_cost_kop),
                      failure=f"{s.failure_rate:.1%}",
                      median="-" if s.median_result_s is None else f"{s.median_result_s:.1f}")]
    lines.append(i18n.get("admin-stats-status"))
    lines += [f"  {status}: {n}" for status, n in sorted(s.jobs_by_status.items())] or ["  -"]
    lines.append(i18n.get("admin-stats-models"))
    lines += [f"  {model}: {n}" for model, n in sorted(s.jobs_by_model.items(),
                                                      key=lambda kv: -kv[1])[:10]] or ["  -"]
    await show(query, "\n".join(lines), _back(i18n).as_markup())


async def _models(query: CallbackQuery, i18n: I18nContext, admin: Admin, *, page: int) -> None:
    rows = await admin.models()
    pages = max(1, -(-len(rows) // MODELS_PER_PAGE))
    page = min(max(page, 0), pages - 1)
    shown = rows[page * MODELS_PER_PAGE:(page + 1) * MODELS_PER_PAGE]
    buttons = [[(("🚫 " if r.override and not r.override.enabled else "")
                 + r.model.title.get(i18n.locale), AdminCb(screen=Screen.MODEL, arg=r.index))]
               for r in shown]
    nav = []
    if page > 0:
        nav.append((i18n.get("ui-prev"), AdminCb(screen=Screen.MODELS, arg=page - 1)))
    if page < pages - 1:
        nav.append((i18n.get("ui-next"), AdminCb(screen=Screen.MODELS, arg=page + 1)))
    if nav:
        buttons.append(nav)
    await show(query, i18n.get("admin-models", page=str(page + 1), pages=str(pages)),
               _back(i18n, *buttons).as_markup())


async def _model(query: CallbackQuery, i18n: I18nContext, admin: Admin, *, screen: Screen,
                 index: int) -> None:
    rows = {r.index: r for r in await admin.models()}
    row = rows.get(index)
    if row is None:
        await show(query, i18n.get("admin-outdated"), _back(i18n).as_markup())
        return
    override = row.override
    if screen in (Screen.TOGGLE, Screen.NOPRICE):
        enabled = override.enabled if override else True
        price = override.price_kop if override else None
        toggled = not enabled if screen is Screen.TOGGLE else enabled
        row = await admin.set_model(index, enabled=toggled,
                                    price_kop=None if screen is Screen.NOPRICE else price,
                                    operator_id=query.from_user.id)
        override = row.override
    await _show_model(query, i18n, row.index, row.model.id, row.catalog_min_kop,
                      row.catalog_max_kop, enabled=override.enabled if override else True,
                      price_kop=override.price_kop if override else None)


async def _show_model(target: Message | CallbackQuery, i18n: I18nContext, index: int,
                      model_id: str, min_kop: int, max_kop: int, *, enabled: bool,
                      price_kop: int | None) -> None:
    text = i18n.get("admin-model", id=model_id, min=rubles(min_kop), max=rubles(max_kop),
                    enabled=i18n.get("admin-enabled-yes" if enabled else "admin-enabled-no"),
                    price="-" if price_kop is None else rubles(price_kop))
    toggle = "admin-btn-disable" if enabled else "admin-btn-enable"
    await show(target, text, _back(
        i18n, [(i18n.get(toggle), AdminCb(screen=Screen.TOGGLE, arg=index))],
        [(i18n.get("admin-btn-price"), AdminCb(screen=Screen.PRICE, arg=index)),
         (i18n.get("admin-btn-noprice"), AdminCb(screen=Screen.NOPRICE, arg=index))],
        [(i18n.get("admin-btn-models"),
          AdminCb(screen=Screen.MODELS, arg=index // MODELS_PER_PAGE))],
    ).as_markup())


@router.message(AdminForm.price, operator)
async def set_price(message: Message, i18n: I18nContext, admin: Admin,
                    state: FSMContext) -> None:
    """Set the price override typed in roubles."""
    index = (await state.get_data()).get(MODEL_KEY)
    kop = _kopecks(message.text or "")
    if index is None or kop is None or kop < 0:
        await show(message, i18n.get("admin-price-bad"), _back(i18n).as_markup())
        return
    rows = {r.index: r for r in await admin.models()}
    current = rows.get(index)
    if current is None:
        await show(message, i18n.get("admin-outdated"), _back(i18n).as_markup())
        return
    await state.set_state(None)
    enabled = current.override.enabled if current.override else True
    row = await admin.set_model(index, enabled=enabled, price_kop=kop,
                                operator_id=message.from_user.id if message.from_user else 0)
    await _show_model(message, i18n, row.index, row.model.id, row.catalog_min_kop,
                      row.catalog_max_kop, enabled=enabled, price_kop=kop)


@router.message(AdminForm.broadcast, operator)
async def preview_broadcast(message: Message, i18n: I18nContext, state: FSMContext) -> None:
    """Show the text as users will see it, with the confirm button."""
    text = (message.text or "").strip()
    if not text or len(text) > BROADCAST_MAX_CHARS:
        await show(message, i18n.get("admin-broadcast-bad"), _back(i18n).as_markup())
        return
    await state.set_state(None)
    await state.update_data({BROADCAST_KEY: text})
    await message.answer(i18n.get("admin-broadcast-preview"))
    await show(message, text, _back(
        i18n, [(i18n.get("admin-btn-send"), BroadcastOkCb())]).as_markup())


@router.callback_query(BroadcastOkCb.filter(), operator)
async def confirm_broadcast(query: CallbackQuery, i18n: I18nContext, admin: Admin,
                            state: FSMContext) -> None:
    """Write the broadcast once per confirm press; the leader's sender does the rest."""
    text = (await state.get_data()).get(BROADCAST_KEY)
    if not text or query.message is None or query.bot is None:
        await show(query, i18n.get("admin-outdated"), _back(i18n).as_markup())
        return
    chat_id = query.message.chat.id
    broadcast_id, recipients, created = await admin.start_broadcast(
        text, operator_id=query.from_user.id, language=i18n.locale, chat_id=chat_id,
        key=f"{chat_id}:{query.message.message_id}")
    if not created:
        return  # a second press of this confirm: the first one's progress message is live
    progress = await query.bot.send_message(chat_id, i18n.get(
        "admin-broadcast-progress", id=str(broadcast_id), sent="0", blocked="0", failed="0",
        total=str(recipients)))
    await admin.set_progress_message(broadcast_id, progress.message_id)


async def _cluster(query: CallbackQuery, i18n: I18nContext, admin: Admin) -> None:
    c = await admin.cluster()
    lease = c.lease or {}
    lines = [i18n.get("admin-cluster", leader=str(lease.get("holder") or "-"),
                      term=str(lease.get("term") or "-"),
                      expires="-" if lease.get("expires_in_s") is None
                      else f"{lease['expires_in_s']:.1f}")]
    lines += [f"• {i['instance_id']} {i['role']} term={i['term']} "
              f"{i['last_seen_at']:%H:%M:%S}" for i in c.instances] or ["-"]
    lines.append(i18n.get("admin-cluster-events"))
    lines += [f"{e['at']:%m-%d %H:%M:%S} term={e['term']} {e['event']} {e['instance_id']}"
              for e in c.events] or ["-"]
    await show(query, "\n".join(lines), _back(i18n).as_markup())


# Registered last: the operators' handlers above take their presses first.
@router.callback_query(AdminCb.filter())
@router.callback_query(AdjustOkCb.filter())
@router.callback_query(RefundOkCb.filter())
@router.callback_query(BroadcastOkCb.filter())
async def ignore_stranger(query: CallbackQuery) -> None:
    """Do nothing for a console button pressed by a non-operator (nothing is revealed)."""


def refused(i18n: I18nContext, exc: AdminError) -> str:
    """Return the refusal of an operator's request in the operator's language."""
    return i18n.get("admin-refused", reason=i18n.get(exc.key, **exc.values))


def _kopecks(text: str) -> int | None:
    """Parse roubles ("+100", "-12.50", "99,9") into kopecks; None when it is not a number."""
    try:
        value = Decimal(text.strip().replace(",", ".").replace(" ", ""))
    except InvalidOperation:
        return None
    if not value.is_finite() or value != value.quantize(Decimal("0.01")):
        return None
    return int(value * 100)
