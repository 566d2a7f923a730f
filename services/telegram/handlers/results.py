"""The buttons under a delivered result, and a status message's Menu (services/telegram/
results.py builds them).

Repeat (a new confirm card with the job's model and parameters), Change parameters (the same
form, its first question asked again), Another model (the catalog at the job's category) and
Menu. Each carries the job's id and works only for the job's owner: anyone else's press, or a
job or model that is gone, says it is outdated and shows the menu.

Every answer is a NEW message below the result: the result (a photo, a transcript, a failure
notice) stays as it was, where an edit in place would replace it. A double tap of one button
on one message answers once (`first_press`).
"""

from __future__ import annotations

from aiogram import Router
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message, Update
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram_i18n import I18nContext

from services.accounts import Accounts, Member
from services.generation import Job
from services.generation.service import Generations
from services.storefront import Storefront
from services.telegram.handlers.catalog import BACK_TO_CATEGORY, Browsing, show_list
from services.telegram.handlers.generate import open_again
from services.telegram.handlers.menu import outdated, show_menu
from services.telegram.ui import CategoryCb, ResultAct, ResultCb, first_press

router = Router(name=__name__)


@router.callback_query(ResultCb.filter())
async def result_pressed(query: CallbackQuery, callback_data: ResultCb, i18n: I18nContext,
                         member: Member, storefront: Storefront, accounts: Accounts,
                         generations: Generations, callback_answer: CallbackAnswer,
                         state: FSMContext, event_update: Update) -> None:
    """Answer a button under the member's own result with a new message below it."""
    below = query.message
    if not isinstance(below, Message):
        await outdated(query, i18n, member, storefront, accounts, callback_answer, state)
        return
    if not await first_press(state, query):
        callback_answer.text = i18n.get("ui-double-tap")
        return
    job = await accounts.job(member.user_id, callback_data.job)
    if job is not None and await _answer(below, callback_data.act, job, i18n, member,
                                         storefront, accounts, generations, state,
                                         card=str(event_update.update_id)):
        return
    # Said below the pressed message: the result the button hangs under stays as it was.
    callback_answer.text = i18n.get("ui-outdated")
    await show_menu(below, i18n, member, storefront, accounts, text=i18n.get("ui-outdated"),
                    state=state)


async def _answer(below: Message, act: ResultAct, job: Job, i18n: I18nContext, member: Member,
                  storefront: Storefront, accounts: Accounts, generations: Generations,
                  state: FSMContext, *, card: str) -> bool:
    """Show what the button opens; False when it is gone (the model or its category)."""
    match act:
        case ResultAct.REPEAT | ResultAct.CHANGE:
            return await open_again(below, i18n, member, generations, storefront, state, job,
                                    change=act is ResultAct.CHANGE, card=card)
        case ResultAct.OTHER:
            listings = (await storefront.shelf()).in_category(job.category)
            if not listings:
                return False
            await state.set_state(Browsing.searching)
            return await show_list(
                below, i18n, listings, page=0, back=BACK_TO_CATEGORY, to=CategoryCb,
                category=job.category,
                title=i18n.get("catalog-category", category=job.category, count=len(listings)))
    await show_menu(below, i18n, member, storefront, accounts, state=state)
    return True
