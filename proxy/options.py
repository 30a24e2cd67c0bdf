"""The proxy's options: declared once, parsed once in configure() into a frozen ProxyConfig.

This is the only module that reads `ctx.options`; the other addons read `config`.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any

from mitmproxy import ctx, exceptions
from wiretape.storage.exchange import SequencePolicy

# The accepted range of each number, (low, high) inclusive: the CLI checks its flags against
# the same ranges (cli/settings.py), naming the flag, before any option is set.
LATENCY_MS = (0.0, 600_000.0)
UPSTREAM_TIMEOUT_S = (0.0, 86_400.0)
POLL_INTERVAL_S = (0.05, 60.0)


def check_range(name: str, value: float, bounds: tuple[float, float], unit: str) -> float:
    """`value` if within `bounds`; else ValueError naming `name` (a flag or an option)."""
    low, high = bounds
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low:g} and {high:g} {unit}")
    return float(value)


class ReplayDate(enum.StrEnum):
    """The Date header of a replayed response: as recorded, or the time it is replayed."""

    RECORDED = "recorded"
    NOW = "now"


def check_sequence(name: str, value: str) -> SequencePolicy:
    try:
        return SequencePolicy(value)
    except ValueError as e:
        choices = ", ".join(p.value for p in SequencePolicy)
        raise ValueError(f"{name} {value!r} must be one of {choices}") from e


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """The options as the addons use them."""

    sequence: SequencePolicy = SequencePolicy.REPEAT_LAST
    latency_ms: float = 0.0  # a fixed delay of each replayed response
    recorded_latency: bool = False  # instead, delay it as long as its recording took
    poll_interval: float = 1.0  # seconds between reads of the shared state
    upstream_timeout: float = 60.0  # seconds until the response head; 0 waits forever
    # mitmproxy's ignore_hosts: it tunnels such HTTPS untouched; plain HTTP to them we
    # forward without recording or replaying, so both schemes behave alike
    ignore_hosts: tuple[re.Pattern[str], ...] = ()
    replay_date: ReplayDate = ReplayDate.RECORDED


class WiretapeOptions:
    """Declares the `wiretape_*` options and keeps them parsed in `config`."""

    def __init__(self) -> None:
        self.config = ProxyConfig()

    def load(self, loader: Any) -> None:
        loader.add_option(
            "wiretape_sequence", str, SequencePolicy.REPEAT_LAST.value,
            "After the last recording of a key: repeat-last, cycle or strict.",
            choices=[p.value for p in SequencePolicy],
        )
        loader.add_option(
            "wiretape_replay_latency", float, 0.0,
            "Milliseconds each replayed response is delayed (0: none).",
        )
        loader.add_option(
            "wiretape_replay_recorded_latency", bool, False,
            "Delay each replayed response as long as its recording took (instead of "
            "wiretape_replay_latency).",
        )
        loader.add_option(
            "wiretape_poll_interval", float, 1.0,
            "Seconds between checks of the shared store for mode, rule and tape changes.",
        )
        loader.add_option(
            "wiretape_replay_date", str, ReplayDate.RECORDED.value,
            "The Date header of replayed responses: recorded, or now (the replay time).",
            choices=[d.value for d in ReplayDate],
        )
        loader.add_option(
            "wiretape_upstream_timeout", float, 60.0,
            "Seconds a forwarded request may wait for the upstream's response head; "
            "then it fails as a timeout (recorded, and replayed as one). 0: no limit.",
        )

    def configure(self, updated: set[str]) -> None:
        if not any(u.startswith("wiretape_") or u == "ignore_hosts" for u in updated):
            return
        o = ctx.options
        try:
            self.config = ProxyConfig(
                sequence=check_sequence("wiretape_sequence", o.wiretape_sequence),
                latency_ms=check_range("wiretape_replay_latency", o.wiretape_replay_latency,
                                       LATENCY_MS, "ms"),
                recorded_latency=o.wiretape_replay_recorded_latency,
                poll_interval=check_range("wiretape_poll_interval", o.wiretape_poll_interval,
                                          POLL_INTERVAL_S, "seconds"),
                upstream_timeout=check_range("wiretape_upstream_timeout",
                                             o.wiretape_upstream_timeout,
                                             UPSTREAM_TIMEOUT_S, "seconds"),
                ignore_hosts=tuple(re.compile(x, re.IGNORECASE) for x in o.ignore_hosts),
                replay_date=ReplayDate(o.wiretape_replay_date),
            )
        except (ValueError, re.error) as e:
            raise exceptions.OptionsError(str(e)) from e
