"""The complete, valid environment of one instance, for tests, benchmarks, the demo and the
local run: nobody has to invent the ten required values."""

from __future__ import annotations

from typing import Final

# Fake credentials: the Telegram sandbox accepts any well-formed token; Kie is never reached.
BOT_TOKEN: Final = "123456789:TEST-token_abcdefghijklmnopqrstuvwxyz"
KIE_KEY: Final = "kie-secret-key-0123456789"
# The pool an instance is deployed with (render.yaml's DB_MAXCONN, a test keeps them equal):
# what the benchmarks' instances and the generation harness run with.
DEPLOYED_DB_MAXCONN: Final = 10


def make_env(database_url: str, **overrides: str) -> dict[str, str]:
    """Return a complete, valid environment for one instance."""
    env = {
        "ADMIN_ID": "1001",
        "BOT_MODE": "polling",
        "DATABASE_URL": database_url,
        "DB_MAXCONN": "5",
        "KIE_API_KEY": KIE_KEY,
        "PAYMENT_BANK": "Test Bank",
        "PAYMENT_CARD_HOLDER": "Ivan Petrov",
        "PAYMENT_PHONE": "+79990001122",
        "TELEGRAM_BOT_TOKEN": BOT_TOKEN,
        "WEBHOOK_BASE_URL": "https://bot.example.com",
        "PORT": "0",
        "INSTANCE_ID": "test-instance",
    }
    env.update(overrides)
    return env
