"""Every family the sandbox serves, by name."""

from __future__ import annotations

from typing import Final

from sandbox.kie.families.base import Family
from sandbox.kie.families.market import Market

FAMILIES: Final[tuple[Family, ...]] = (Market(),)
FAMILY_BY_NAME: Final[dict[str, Family]] = {family.name: family for family in FAMILIES}
