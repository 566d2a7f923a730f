"""Telegram Stars (XTR) packages: what each costs in stars and credits in kopecks.

Telegram's rules: digital goods and services sold inside Telegram are paid in Stars; an XTR
invoice has exactly one price item, no provider token, and a payload of at most 128 bytes.
The payload is ours and names the package and the kopecks it credits
(`kb1:<stars>:<kopecks>`), so a pre-checkout can be checked without a database read: the
package exists, the payload parses, the amount and currency match, and the rate has not
changed since the invoice was sent (else the user is asked to open a fresh one).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from enum import StrEnum

CURRENCY = "XTR"
PAYLOAD_PREFIX = "kb1"
MAX_PAYLOAD_BYTES = 128
# The star counts offered (Telegram lets a user buy stars in similar steps).
PACKAGES_STARS = (50, 100, 250, 500, 1000, 2500)


class CheckoutRefusal(StrEnum):
    """Why a pre-checkout is refused (each has a user-facing text)."""

    NOT_OURS = "not_ours"          # the payload is not one of our invoices
    NO_PACKAGE = "no_package"      # no such package (any more)
    WRONG_AMOUNT = "wrong_amount"  # currency or amount differ from the package
    PRICE_CHANGED = "price_changed"  # the rate changed since the invoice was sent


@dataclass(frozen=True, slots=True)
class StarPackage:
    """A number of stars and the kopecks it credits."""

    stars: int
    credit_kop: int

    def payload(self) -> str:
        """Return the invoice payload naming this package."""
        return f"{PAYLOAD_PREFIX}:{self.stars}:{self.credit_kop}"


def credit_of(stars: int, rub_per_star: Decimal) -> int:
    """Return the kopecks `stars` credit at the rate (rounded down: never over-credit)."""
    return int((Decimal(stars) * rub_per_star * 100).to_integral_value(rounding=ROUND_FLOOR))


def packages(rub_per_star: Decimal) -> list[StarPackage]:
    """Return the packages offered at this rate."""
    return [StarPackage(stars, credit_of(stars, rub_per_star)) for stars in PACKAGES_STARS]


def parse_payload(payload: str) -> StarPackage | None:
    """Return the package a payload names, or None when it is not one of ours."""
    if len(payload.encode()) > MAX_PAYLOAD_BYTES:
        return None
    parts = payload.split(":")
    if len(parts) != 3 or parts[0] != PAYLOAD_PREFIX:
        return None
    stars, credit = parts[1], parts[2]
    if not (stars.isdigit() and credit.isdigit()):
        return None
    return StarPackage(int(stars), int(credit))


def check_checkout(*, payload: str, currency: str, total_amount: int,
                   rub_per_star: Decimal) -> CheckoutRefusal | None:
    """Return why a pre-checkout must be refused, or None to accept it."""
    package = parse_payload(payload)
    if package is None:
        return CheckoutRefusal.NOT_OURS
    if package.stars not in PACKAGES_STARS:
        return CheckoutRefusal.NO_PACKAGE
    if currency != CURRENCY or total_amount != package.stars:
        return CheckoutRefusal.WRONG_AMOUNT
    if package.credit_kop != credit_of(package.stars, rub_per_star):
        return CheckoutRefusal.PRICE_CHANGED
    return None
