"""The catalog: a category's models (cheapest first, paged), free models, search, model cards.

What is on sale comes from the storefront on every screen (operators' overrides included), so
a button for a model that was hidden since, or a page that no longer exists, answers that it
is outdated and shows the menu. While a list or the search prompt is open, any text the user
types is a search by name.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.keyboard import InlineKeyboardBuilder
from aiogram_i18n import I18nContext

from services.accounts import Accounts, Member
from services.storefront import Listing, Storefront
from services.telegram.handlers.menu import FREE, outdated
from services.telegram.texts import rubles
from services.telegram.ui import (
    CategoryCb,
    FindCb,
    FoundCb,
    GenerateCb,
    ModelCb,
    add_menu_button,
    add_pager,
    button,
    pages_of,
    show,
)

router = Router(name=__name__)

MODELS_PER_PAGE = 8
QUERY_KEY = "search_query"
# A search query longer than this is cut (model names are far shorter).
QUERY_MAX_CHARS = 40
BACK_TO_CATEGORY, BACK_TO_FREE, BACK_TO_SEARCH = "", "f", "s"


class Browsing(StatesGroup):
    """The user is looking at the catalog: a text they type is a search."""

    searching = State()


def price_label(i18n: I18nContext, listing: Listing) -> str:
    """Return "free", "N ₽" or "from N ₽" for a list button."""
    if listing.free:
        return i18n.get("catalog-free-mark")
    if listing.min_kop == listing.max_kop:
        return rubles(listing.min_kop)
    return i18n.get("catalog-from", price=rubles(listing.min_kop))


def price_range(i18n: I18nContext, listing: Listing) -> str:
    """Return the card's price: one price, or the range over the model's SKUs."""
    def one(kop: int) -> str:
        return i18n.get("catalog-free-mark") if kop == 0 else rubles(kop)
    if listing.min_kop == listing.max_kop:
        return one(listing.min_kop)
    return i18n.get("catalog-range", low=one(listing.min_kop), high=one(listing.max_kop))


def input_labels(i18n: I18nContext, listing: Listing) -> str:
    """Return the model's inputs in words: the required ones, then the optional ones."""
    def labels(required: bool) -> list[str]:
        names = [i18n.get("input-" + f.name.replace("_", "-"))
                 for f in listing.model.inputs if f.required == required]
        return list(dict.fromkeys(names))  # two fields can share a label (image_input, ...)
    required, optional = labels(True), labels(False)
    text = ", ".join(required)
    if optional:
        text += ("; " if text else "") + i18n.get("catalog-optional", names=", ".join(optional))
    return text


async def show_list(target: Message | CallbackQuery, i18n: I18nContext, listings: list[Listing],
                    *, title: str, page: int, back: str,
                    to: type[CategoryCb] | type[FoundCb], category: str = "") -> bool:
    """Show one page of listings; return False when the page does not exist (outdated)."""
    pages = pages_of(len(listings), MODELS_PER_PAGE)
    if not 0 <= page < pages:
        return False
    kb = InlineKeyboardBuilder()
    for listing in listings[page * MODELS_PER_PAGE:(page + 1) * MODELS_PER_PAGE]:
        kb.row(button(i18n.get("catalog-item", title=listing.title(i18n.locale),
                               price=price_label(i18n, listing)),
                      ModelCb(model=listing.index, back=back, page=page)))

    def page_cb(p: int) -> CategoryCb | FoundCb:
        return CategoryCb(category=category, page=p) if to is CategoryCb else FoundCb(page=p)

    add_pager(kb, i18n, page=page, pages=pages, to=page_cb)
    kb.row(button(i18n.get("menu-search"), FindCb()))
    await show(target, title, add_menu_button(kb, i18n).as_markup())
    return True


@router.callback_query(CategoryCb.filter())
async def category_page(query: CallbackQuery, callback_data: CategoryCb, i18n: I18nContext,
                        member: Member, storefront: Storefront, accounts: Accounts,
                        callback_answer: CallbackAnswer, state: FSMContext) -> None:
    """Show a page of a category's models, or of the free models."""
    shelf = await storefront.shelf()
    category = callback_data.category
    if category == FREE:
        listings = shelf.free()
        title = i18n.get("catalog-free", count=len(listings))
        back = BACK_TO_FREE
    else:
        listings = shelf.in_category(category)
        title = i18n.get("catalog-category", category=category, count=len(listings))
        back = BACK_TO_CATEGORY
    await state.set_state(Browsing.searching)
    if not listings or not await show_list(query, i18n, listings, title=title,
                                           page=callback_data.page, back=back, to=CategoryCb,
                                           category=category):
        await outdated(query, i18n, member, storefront, accounts, callback_answer, state)


@router.callback_query(FindCb.filter())
async def ask_query(query: CallbackQuery, i18n: I18nContext, state: FSMContext) -> None:
    """Ask for a model name."""
    await state.set_state(Browsing.searching)
    kb = add_menu_button(InlineKeyboardBuilder(), i18n)
    await show(query, i18n.get("catalog-search-prompt"), kb.as_markup())


@router.message(Browsing.searching, F.text, ~F.text.startswith("/"))
async def search(message: Message, i18n: I18nContext, storefront: Storefront,
                 state: FSMContext) -> None:
    """Search the visible models by name and show the first page of results."""
    text = " ".join((message.text or "").split())[:QUERY_MAX_CHARS]
    await state.update_data({QUERY_KEY: text})
    await show_results(message, i18n, storefront, text, page=0)


async def show_results(target: Message | CallbackQuery, i18n: I18nContext,
                       storefront: Storefront, text: str, *, page: int) -> bool:
    """Show a page of the results for `text`; return False when the page does not exist."""
    found = (await storefront.shelf()).search(text)
    if not found:
        kb = InlineKeyboardBuilder()
        kb.row(button(i18n.get("menu-search"), FindCb()))
        await show(target, i18n.get("catalog-not-found", query=text),
                   add_menu_button(kb, i18n).as_markup())
        return page == 0
    return await show_list(target, i18n, found, page=page, back=BACK_TO_SEARCH, to=FoundCb,
                           title=i18n.get("catalog-found", query=text, count=len(found)))


@router.callback_query(FoundCb.filter())
async def results_page(query: CallbackQuery, callback_data: FoundCb, i18n: I18nContext,
                       member: Member, storefront: Storefront, accounts: Accounts,
                       callback_answer: CallbackAnswer, state: FSMContext) -> None:
    """Show another page of the latest search's results."""
    text = (await state.get_data()).get(QUERY_KEY)
    if not text or not await show_results(query, i18n, storefront, text,
                                          page=callback_data.page):
        await outdated(query, i18n, member, storefront, accounts, callback_answer, state)


async def show_card(target: Message | CallbackQuery, i18n: I18nContext, listing: Listing, *,
                    back: CategoryCb | FoundCb | None) -> None:
    """Show a model's card: what it does, what it needs, its price and time, Generate."""
    model = listing.model
    text = i18n.get("catalog-card", title=listing.title(i18n.locale),
                    free="yes" if listing.free else "no",
                    description=model.description.get(i18n.locale),
                    inputs=input_labels(i18n, listing), price=price_range(i18n, listing),
                    eta=model.category)
    kb = InlineKeyboardBuilder()
    kb.row(button(i18n.get("catalog-generate"), GenerateCb(model=listing.index)))
    if back is not None:
        kb.row(button(i18n.get("ui-back"), back))
    await show(target, text, add_menu_button(kb, i18n).as_markup())


@router.callback_query(ModelCb.filter())
async def model_card(query: CallbackQuery, callback_data: ModelCb, i18n: I18nContext,
                     member: Member, storefront: Storefront, accounts: Accounts,
                     callback_answer: CallbackAnswer, state: FSMContext) -> None:
    """Show the card of a visible model."""
    listing = (await storefront.shelf()).listing(callback_data.model)
    if listing is None:
        await outdated(query, i18n, member, storefront, accounts, callback_answer, state)
        return
    back: CategoryCb | FoundCb
    if callback_data.back == BACK_TO_SEARCH:
        back = FoundCb(page=callback_data.page)
    else:
        category = FREE if callback_data.back == BACK_TO_FREE else listing.model.category
        back = CategoryCb(category=category, page=callback_data.page)
    await show_card(query, i18n, listing, back=back)
