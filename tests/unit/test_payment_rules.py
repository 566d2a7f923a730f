"""The payment rules that need no database: Star packages and their pre-checkout check, typed
amounts, references, and the payment keys' validation."""

from __future__ import annotations

from decimal import Decimal

import pytest

from config import ConfigError, load_settings
from services.payments.stars import (
    MAX_PAYLOAD_BYTES,
    CheckoutRefusal,
    check_checkout,
    credit_of,
    packages,
    parse_payload,
)
from services.telegram.handlers.topup import parse_rub, reference_for
from tests.helpers import make_env

RATE = Decimal("1.2")


def test_a_package_credits_its_stars_at_the_rate_rounded_down() -> None:
    assert credit_of(100, RATE) == 12_000
    assert credit_of(1, Decimal("0.015")) == 1  # 1.5 kopecks: never over-credit
    for package in packages(RATE):
        assert parse_payload(package.payload()) == package
        assert len(package.payload().encode()) <= MAX_PAYLOAD_BYTES


def test_a_checkout_of_a_current_package_is_accepted() -> None:
    assert check_checkout(payload="kb1:100:12000", currency="XTR", total_amount=100,
                          rub_per_star=RATE) is None


@pytest.mark.parametrize(("payload", "currency", "amount", "refusal"), [
    ("someone-else", "XTR", 100, CheckoutRefusal.NOT_OURS),
    ("kb1:100:x", "XTR", 100, CheckoutRefusal.NOT_OURS),
    ("kb1:7:840", "XTR", 7, CheckoutRefusal.NO_PACKAGE),
    ("kb1:100:12000", "XTR", 99, CheckoutRefusal.WRONG_AMOUNT),
    ("kb1:100:12000", "USD", 100, CheckoutRefusal.WRONG_AMOUNT),
    ("kb1:100:9900", "XTR", 100, CheckoutRefusal.PRICE_CHANGED),
], ids=["foreign", "garbled", "no-package", "amount", "currency", "old-rate"])
def test_a_checkout_that_is_not_a_current_package_is_refused_with_its_reason(
        payload: str, currency: str, amount: int, refusal: CheckoutRefusal) -> None:
    assert check_checkout(payload=payload, currency=currency, total_amount=amount,
                          rub_per_star=RATE) is refusal


@pytest.mark.parametrize(("typed", "rub"), [
    ("500", 500), ("1 500", 1500), ("1\u00a0500 ₽", 1500), ("700р", 700),
    ("12.5", None), ("-5", None), ("много", None), ("", None), ("9" * 10, None)])
def test_typed_amounts_are_whole_roubles(typed: str, rub: int | None) -> None:
    assert parse_rub(typed) == rub


def test_a_reference_is_stable_per_press_and_differs_between_presses() -> None:
    first = reference_for(42, "press-1")
    assert first == reference_for(42, "press-1")
    assert first != reference_for(42, "press-2") != reference_for(43, "press-1")
    assert first.startswith("KB-") and len(first) == 11
    assert not set(first[3:]) & set("01IO")


def test_payment_keys_parse_and_a_minimum_above_the_maximum_is_refused() -> None:
    settings = load_settings(make_env("postgresql://u@h/db", STARS_RUB_RATE="1.2",
                                      PAYMENT_CARD="2200 0000 0000 0001"))
    assert settings.stars_rub_rate == RATE and settings.payment_card == "2200 0000 0000 0001"
    assert (settings.topup_min_rub, settings.topup_max_rub) == (100, 100_000)
    assert load_settings(make_env("postgresql://u@h/db")).stars_rub_rate is None
    with pytest.raises(ConfigError, match="TOPUP_MAX_RUB: must be at least TOPUP_MIN_RUB"):
        load_settings(make_env("postgresql://u@h/db", TOPUP_MIN_RUB="500",
                               TOPUP_MAX_RUB="100"))
    with pytest.raises(ConfigError, match="STARS_RUB_RATE"):
        load_settings(make_env("postgresql://u@h/db", STARS_RUB_RATE="free"))
