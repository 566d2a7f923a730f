"""Every text the bot says, per language, in one place."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

DEFAULT_LANGUAGE = "en"

TEXTS: Mapping[str, Mapping[str, str]] = MappingProxyType({
    "ru": MappingProxyType({
        "welcome": ("Привет, {name}! Я создаю изображения, видео и аудио с помощью нейросетей "
                    "Kie.ai.\nВаш баланс: {balance}.\n/help — что я умею."),
        "welcome_back": "С возвращением, {name}! Ваш баланс: {balance}.\n/help — что я умею.",
        "help": ("Что я умею:\n/start — начать\n/balance — баланс\n/help — эта справка\n\n"
                 "Оплата генераций — с предоплаченного баланса в рублях."),
        "balance": "Ваш баланс: {balance}.\nЗарезервировано под генерации: {hold}.",
        "no_wallet": "У вас ещё нет кошелька. Нажмите /start.",
        "hint": "Я не понял «{text}». Отправьте /help, чтобы увидеть команды.",
        "something_went_wrong": ("Что-то пошло не так, и мы не смогли обработать ваш запрос. "
                                 "Попробуйте ещё раз чуть позже."),
    }),
    "en": MappingProxyType({
        "welcome": ("Hello, {name}! I make images, video and audio with Kie.ai models.\n"
                    "Your balance: {balance}.\n/help shows what I can do."),
        "welcome_back": ("Welcome back, {name}! Your balance: {balance}.\n"
                         "/help shows what I can do."),
        "help": ("What I can do:\n/start - start\n/balance - your balance\n/help - this help\n\n"
                 "Generations are paid from a prepaid balance in roubles."),
        "balance": "Your balance: {balance}.\nHeld for running generations: {hold}.",
        "no_wallet": "You have no wallet yet. Send /start.",
        "hint": "I did not understand \u201c{text}\u201d. Send /help to see the commands.",
        "something_went_wrong": ("Something went wrong and we could not handle your request. "
                                 "Please try again a little later."),
    }),
})


def language_of(code: str | None) -> str:
    """Map a Telegram language_code to a supported language (Russian for ru/uk/be/kk)."""
    if code and code.split("-")[0].lower() in ("ru", "uk", "be", "kk"):
        return "ru"
    return DEFAULT_LANGUAGE


def get(code: str | None, key: str, **values: object) -> str:
    """Return text `key` in the user's language, formatted with values."""
    return TEXTS[language_of(code)][key].format(**values)


def rubles(kopecks: int) -> str:
    """Format kopecks as roubles for people: 1234567 -> '12 345.67 ₽'."""
    sign = "-" if kopecks < 0 else ""
    whole, cents = divmod(abs(kopecks), 100)
    return f"{sign}{whole:,}.{cents:02d} ₽".replace(",", " ")
