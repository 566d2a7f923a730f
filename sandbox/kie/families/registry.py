"""Every family the sandbox serves, by name."""

from __future__ import annotations

from typing import Final

from sandbox.kie.families.base import Family
from sandbox.kie.families.flux import FluxKontext
from sandbox.kie.families.gpt4o import Gpt4oImage
from sandbox.kie.families.market import Market
from sandbox.kie.families.midjourney import Midjourney
from sandbox.kie.families.runway import Runway
from sandbox.kie.families.suno import Suno
from sandbox.kie.families.veo import Veo

FAMILIES: Final[tuple[Family, ...]] = (
    Market(),
    Veo(),
    Gpt4oImage(),
    FluxKontext(),
    Runway(),
    Suno(),
    Midjourney(),
)
