"""/metrics: RuntimeState exported through prometheus_client, read at scrape time.

Each RuntimeState has its own CollectorRegistry (tests and several instances in one process
stay independent) holding one collector that turns the state into metric families.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from supervisor.runtime_state import RuntimeState

PREFIX = "kiebot_"
# Help text of each RuntimeState counter (`state.count(name)`); others get a generic one.
COUNTER_HELP = {
    "updates_received": "Telegram updates stored from getUpdates by this instance's poller.",
    "webhook_updates": "Telegram updates stored from webhook deliveries by this instance.",
    "updates_processed": "Telegram updates handled to completion by this instance.",
    "updates_failed": "Attempts to handle a Telegram update that failed (retried later).",
    "kie_tasks_created": "Kie createTask calls that returned a task id.",
    "kie_resubmits": "createTask attempts after a job's first (bounded; never a second charge).",
    "kie_callbacks_stored": "Kie callbacks stored durably by this instance.",
    "kie_callbacks_duplicate": "Kie callbacks received again (stored before; nothing changed).",
    "kie_callbacks_refused": "Kie callbacks refused (bad body, token, signature, DB away).",
    "kie_callbacks_applied": "Stored Kie answers the leader applied to their jobs.",
    "invariant_violations": "Money and job invariant violations found by the leader's audits.",
}


class StateCollector(Collector):
    """Collect one RuntimeState's figures at scrape time."""

    def __init__(self, state: RuntimeState) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        state = self._state
        leader = GaugeMetricFamily(PREFIX + "is_leader", "1 while this instance leads.",
                                   labels=["instance"])
        leader.add_metric([state.instance_id], int(state.role == "leader"))
        yield leader
        yield GaugeMetricFamily(PREFIX + "serving",
                                "1 while this instance can serve (the /health 200 rule).",
                                value=int(not state.problems()))
        yield GaugeMetricFamily(PREFIX + "term", "The term this instance leads (0: none).",
                                value=state.term or 0)
        yield CounterMetricFamily(PREFIX + "takeovers",
                                  "Expired leaders whose lock session this instance ended.",
                                  value=state.takeovers)
        yield GaugeMetricFamily(PREFIX + "uptime_seconds", "Seconds since the process started.",
                                value=state.uptime_s())
        restarts = CounterMetricFamily(PREFIX + "service_restarts",
                                       "Restarts of a supervised service after a crash.",
                                       labels=["service"])
        for name, info in sorted(state.services.items()):
            restarts.add_metric([name], info.restarts)
        yield restarts
        if state.invariants is not None:
            yield GaugeMetricFamily(PREFIX + "invariants_ok",
                                    "1 when the leader's last audit found every invariant held.",
                                    value=int(state.invariants["ok"]))
        for name, value in sorted(state.counters.items()):
            yield CounterMetricFamily(PREFIX + name,
                                      COUNTER_HELP.get(name, f"Count of {name} events."),
                                      value=value)


def registry_for(state: RuntimeState) -> CollectorRegistry:
    """Return a registry of its own exporting state."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StateCollector(state))
    return registry
