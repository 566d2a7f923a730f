"""The Kie profile of the local run, the playground and the demo, in the Kie sandbox."""

from __future__ import annotations

from sandbox.harness.env import KIE_KEY
from sandbox.harness.local_stack import (
    KIE_DURATION_MS_BY_CATEGORY,
    KIE_FAIL_RATE,
    apply_kie_profile,
    kie_profile,
)
from sandbox.kie import KieSandbox, KieSandboxClient
from services.catalog import get_catalog


def test_every_catalog_model_takes_its_categorys_time() -> None:
    durations = {rule["model"]: rule["duration_ms"] for rule in kie_profile()
                 if "duration_ms" in rule}
    for model in get_catalog().models:
        assert durations[model.kie_model] == KIE_DURATION_MS_BY_CATEGORY[model.category]


def test_a_zero_fail_rate_adds_no_failure_rule() -> None:
    assert not [rule for rule in kie_profile(0) if "fail_rate" in rule]
    [failing] = [rule for rule in kie_profile() if "fail_rate" in rule]
    assert (failing["model"], failing["fail_rate"]) == ("*", KIE_FAIL_RATE)


async def test_the_kie_sandbox_takes_the_whole_profile() -> None:
    async with KieSandbox([KIE_KEY]) as kie, KieSandboxClient(kie.base_url) as control:
        await apply_kie_profile(kie.base_url)
        rules = await control.faults()
    assert len(rules) == len(kie_profile())
    assert {rule["model"] for rule in rules} >= {"z-image", "*"}
