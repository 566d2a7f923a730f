"""History: the user's generations (newest first, paged), one generation's card, re-send, repeat.

A finished generation's result is sent again by the Telegram file ids its delivery stored
(Kie's own URLs expire), so a re-send costs no Kie call and no money. A double tap on
"send again" sends once. Repeat opens a new confirm card with the generation's model and
parameters (`generate.open_again`, the same as the Repeat button under a result), where
Generate starts a new one.
"""

from __future__ import annotations

import logging

from aiogram import Bot, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Update
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.keyboard import InlineKeyboardBuilder
from aiogram_i18n import I18nContext

from services.accounts import Accounts, Member
from services.generation import Job, JobStatus
from services.generation.service import Generations
from services.storefront import Storefront
from services.telegram.handlers.generate import open_again
from services.telegram.handlers.menu import outdated
from services.telegram.texts import rubles
from services.telegram.ui import (
    HistoryCb,
    add_menu_button,
    add_pager,
    button,
    first_press,
    pages_of,
    show,
)

logger = logging.getLogger(__name__)
router = Router(name=__name__)

JOBS_PER_PAGE = 8
DATE_FORMAT = "%d.%m.%Y %H:%M UTC"
SHORT_DATE_FORMAT = "%d.%m"
# How a delivered file is sent again, tried in order per category (a document always works).
SEND_ORDER = {"image": ("photo", "document"), "video": ("video", "document"),
              "audio": ("audio", "document"), "upscale": ("photo", "video", "document")}


class JobCb(CallbackData, prefix="job"):
    """Open one generation's card (`page`: the history page its Back returns to)."""

    job: int
    page: int = 0


class ResendCb(CallbackData, prefix="resend"):
    """Send a finished generation's result again."""

    job: int


class RepeatCb(CallbackData, prefix="again"):
    """Open a new confirm card with a generation's model and parameters."""

    job: int


def price_of(i18n: I18nContext, job: Job) -> str:
    """Return the job's price in words."""
    return i18n.get("job-free") if job.free or job.price_kop == 0 else rubles(job.price_kop)


def files_of(job: Job) -> list[str]:
    """Return the file ids a job's delivery stored ("" marks a result sent as a link)."""
    return [file_id for file_id in job.delivered_file_ids or [] if file_id]


def title_of(storefront: Storefront, job: Job, language: str) -> str:
    """Return the job's model name (its id if the catalog no longer has it)."""
    model = storefront.catalog.get(job.model_id)
    return model.title.get(language) if model else job.model_id


@router.callback_query(HistoryCb.filter())
async def history_page(query: CallbackQuery, callback_data: HistoryCb, i18n: I18nContext,
                       member: Member, storefront: Storefront, accounts: Accounts,
                       callback_answer: CallbackAnswer, state: FSMContext) -> None:
    """Show one page of the user's generations."""
    page = callback_data.page
    jobs = await accounts.jobs(member.user_id, offset=page * JOBS_PER_PAGE,
                               limit=JOBS_PER_PAGE)
    kb = InlineKeyboardBuilder()
    if jobs.total == 0:
        await show(query, i18n.get("history-empty"), add_menu_button(kb, i18n).as_markup())
        return
    pages = pages_of(jobs.total, JOBS_PER_PAGE)
    if not jobs.jobs or page < 0:
        await outdated(query, i18n, member, storefront, accounts, callback_answer, state)
        return
    for job in jobs.jobs:
        kb.row(button(i18n.get("history-item", status=str(job.status), id=str(job.id),
                               model=title_of(storefront, job, i18n.locale),
                               price=price_of(i18n, job),
                               date=job.created_at.strftime(SHORT_DATE_FORMAT)),
                      JobCb(job=job.id, page=page)))
    add_pager(kb, i18n, page=page, pages=pages, to=lambda p: HistoryCb(page=p))
    await show(query, i18n.get("history-title", count=jobs.total),
               add_menu_button(kb, i18n).as_markup())


@router.callback_query(JobCb.filter())
async def job_card(query: CallbackQuery, callback_data: JobCb, i18n: I18nContext,
                   member: Member, storefront: Storefront, accounts: Accounts,
                   callback_answer: CallbackAnswer, state: FSMContext) -> None:
    """Show one generation: status, price, date; re-send and repeat when they apply."""
    job = await accounts.job(member.user_id, callback_data.job)
    if job is None:
        await outdated(query, i18n, member, storefront, accounts, callback_answer, state)
        return
    kb = InlineKeyboardBuilder()
    if job.status == JobStatus.SUCCEEDED and files_of(job):
        kb.row(button(i18n.get("job-resend"), ResendCb(job=job.id)))
    if (await storefront.shelf()).by_id(job.model_id) is not None:
        kb.row(button(i18n.get("result-repeat"), RepeatCb(job=job.id)))
    kb.row(button(i18n.get("job-history"), HistoryCb(page=callback_data.page)))
    text = i18n.get("job-card", id=str(job.id), model=title_of(storefront, job, i18n.locale),
                    status=str(job.status), price=price_of(i18n, job),
                    date=job.created_at.strftime(DATE_FORMAT))
    await show(query, text, add_menu_button(kb, i18n).as_markup())


@router.callback_query(ResendCb.filter())
async def resend(query: CallbackQuery, callback_data: ResendCb, i18n: I18nContext, bot: Bot,
                 member: Member, storefront: Storefront, accounts: Accounts,
                 callback_answer: CallbackAnswer, state: FSMContext) -> None:
    """Send the result's files again by their Telegram file ids (a double tap sends once).

    Crash analysis: the files are sent before the handler returns; a crash after some were
    sent re-runs the update, which sends them again (at-least-once, like every handler).
    """
    job = await accounts.job(member.user_id, callback_data.job)
    if job is None:
        await outdated(query, i18n, member, storefront, accounts, callback_answer, state)
        return
    files = files_of(job)
    if not files:
        callback_answer.text = i18n.get("job-no-files")
        return
    if not await first_press(state, query):
        callback_answer.text = i18n.get("ui-double-tap")
        return
    for file_id in files:
        await send_file(bot, job.chat_id, file_id, category=job.category)
    callback_answer.text = i18n.get("job-resent")
    kb = InlineKeyboardBuilder()
    kb.row(button(i18n.get("job-history"), HistoryCb()))
    await bot.send_message(job.chat_id, i18n.get("job-resent"),
                           reply_markup=add_menu_button(kb, i18n).as_markup())


async def send_file(bot: Bot, chat_id: int, file_id: str, *, category: str) -> None:
    """Send a file Telegram already has, as the kind it most likely is."""
    kinds = SEND_ORDER.get(category, ("document",))
    for kind in kinds:
        try:
            await getattr(bot, f"send_{kind}")(chat_id, file_id)
            return
        except TelegramBadRequest as exc:
            if kind == kinds[-1]:
                raise
            # The file was delivered as another kind (e.g. a large image as a document).
            logger.info("resend_kind_refused", extra={"kind": kind, "error": str(exc)})


@router.callback_query(RepeatCb.filter())
async def repeat(query: CallbackQuery, callback_data: RepeatCb, i18n: I18nContext,
                 member: Member, storefront: Storefront, accounts: Accounts,
                 generations: Generations, callback_answer: CallbackAnswer, state: FSMContext,
                 event_update: Update) -> None:
    """Open a new confirm card with the generation's parameters (its Generate makes a new one)."""
    job = await accounts.job(member.user_id, callback_data.job)
    if job is None or not await open_again(query, i18n, member, generations, storefront, state,
                                           job, change=False, card=str(event_update.update_id)):
        await outdated(query, i18n, member, storefront, accounts, callback_answer, state)
