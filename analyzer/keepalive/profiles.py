"""Vendor profiles (SPEC.md §3): default settings and state-machine details per implementation,
and a fingerprint that picks one from what an originator's keepalives look like.

`--profile NAME` applies NAME to every endpoint; `--profile ADDRESS=NAME` to one endpoint
(repeatable); `--profile auto` fingerprints each originator. Without `--profile` every
originator runs the Cisco IOS machine, as before (its `profile` reads "cisco", source
"default").

| profile         | defaults        | line protocol                                              |
|-----------------|-----------------|------------------------------------------------------------|
| cisco           | 10 s, 3 retries | down at the tick that finds counter ≥ retries (SPEC.md §2) |
| mikrotik        | 10 s, 10        | as Cisco (`keepalive=10s,10`)                              |
| huawei          | 5 s, 3          | as Cisco (`keepalive period 5 retry-times 3`)              |
| juniper         | 1 s, hold 5 s   | down when no reply for hold-time = period × retries        |
| openbsd         | 10 s, 3         | hold timer period × count, then a hold-down before up      |
| linux-reflector | —               | never originates (reflects with forwarding=1, rp_filter=0) |

For juniper, `retries` stands for hold-time / keepalive-time: `--period 1 --retries 5` is
`keepalive-time 1; hold-time 5`. A period inferred from the capture still wins over a
profile's default period; a profile's default retries replace the IOS default of 3 (the
source stays "default").
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from analyzer.keepalive.model import Traits
from analyzer.keepalive.timeline import OriginatorTimeline

PROFILE_NAMES = ("cisco", "mikrotik", "huawei", "juniper", "openbsd", "linux-reflector")
AUTO = "auto"


class Machine(StrEnum):
    """Which state machine an originator runs."""

    COUNTER = "counter"  # Cisco IOS (analyzer.keepalive.state.KeepaliveMachine)
    HOLD_TIMER = "hold-timer"  # Juniper (HoldTimerMachine)
    HOLD_DOWN = "hold-down"  # OpenBSD (HoldTimerMachine with holddown)


@dataclass(frozen=True, slots=True)
class Profile:
    """One implementation's keepalive."""

    name: str
    title: str
    default_period: float
    default_retries: int
    machine: Machine = Machine.COUNTER
    originates: bool = True

    def timeline(
        self, period: float, retries: int, *, keep_events: bool = True
    ) -> OriginatorTimeline:
        """A fresh timeline running this profile's machine."""
        if self.machine is Machine.COUNTER:
            return OriginatorTimeline(period, retries, keep_events=keep_events)
        return OriginatorTimeline(
            period,
            retries,
            keep_events=keep_events,
            hold=hold_time(period, retries),
            holddown=self.machine is Machine.HOLD_DOWN,
        )

    def hold_time(self, period: float, retries: int) -> float | None:
        """Seconds without a reply before the line goes down (timer machines only)."""
        return None if self.machine is Machine.COUNTER else hold_time(period, retries)


def hold_time(period: float, retries: int) -> float:
    """Juniper hold-time / OpenBSD's timeout × count."""
    return period * retries


PROFILES: dict[str, Profile] = {
    "cisco": Profile("cisco", "Cisco IOS", 10.0, 3),
    "mikrotik": Profile("mikrotik", "MikroTik RouterOS", 10.0, 10),
    "huawei": Profile("huawei", "Huawei VRP", 5.0, 3),
    "juniper": Profile("juniper", "Juniper Junos", 1.0, 5, Machine.HOLD_TIMER),
    "openbsd": Profile("openbsd", "OpenBSD gre(4)", 10.0, 3, Machine.HOLD_DOWN),
    "linux-reflector": Profile(
        "linux-reflector", "Linux (reflects only)", 10.0, 3, originates=False
    ),
}


@dataclass(frozen=True, slots=True)
class ProfileChoice:
    """The profile an originator runs, where it came from and why."""

    profile: Profile
    source: str  # "default", "cli" or "auto"
    evidence: tuple[str, ...] = ()


ProfileSpec = tuple[tuple[str | None, str], ...]  # (address or None for all, name)


def parse_profile_option(text: str) -> tuple[str | None, str]:
    """`NAME`, `auto` or `ADDRESS=NAME` → (address, name); ValueError with a reason."""
    address: str | None = None
    name = text.strip()
    if "=" in name:
        where, name = (part.strip() for part in name.split("=", 1))
        try:
            address = str(ipaddress.ip_address(where))
        except ValueError:
            raise ValueError(f"profile {text!r}: {where!r} is not an IP address") from None
    name = name.lower()
    if name not in PROFILES and name != AUTO:
        allowed = ", ".join((*PROFILE_NAMES, AUTO))
        raise ValueError(f"profile {name!r} is not one of {allowed}")
    return address, name


def lookup(spec: ProfileSpec, address: str) -> str | None:
    """The profile name given for `address` (an address-specific one wins)."""
    general: str | None = None
    for where, name in spec:
        if where == address:
            return name
        if where is None:
            general = name
    return general


def choose(
    spec: ProfileSpec,
    address: str,
    traits: Traits | None,
    observed_period: float | None,
    inner_addresses: tuple[str, str] | None,
) -> ProfileChoice:
    """The profile of an originator: given, fingerprinted (`auto`), or Cisco by default."""
    name = lookup(spec, address)
    if name is None:
        return ProfileChoice(PROFILES["cisco"], "default")
    if name != AUTO:
        return ProfileChoice(PROFILES[name], "cli")
    return fingerprint(traits, observed_period, inner_addresses)


# Strength of a trait as evidence.
STRONG, MEDIUM, WEAK = 3, 2, 1
CISCO_ID_SHARE = 0.8  # requests whose inner ID = outer ID − 1, for the IOS trait
OPENBSD_PAYLOAD = 16  # uptime (4) + random (4) + SipHash-2-4 digest (8)
TRUSTSEC = 0x8909
HUAWEI_PT = 0x0004


def fingerprint(
    traits: Traits | None,
    observed_period: float | None,
    inner_addresses: tuple[str, str] | None,
) -> ProfileChoice:
    """Score each profile on the traits of an originator's requests; Cisco when none tells."""
    scores: dict[str, int] = {}
    evidence: dict[str, list[str]] = {}

    def vote(name: str, weight: int, why: str) -> None:
        scores[name] = scores.get(name, 0) + weight
        evidence.setdefault(name, []).append(why)

    if traits is not None and traits.requests:
        requests = traits.requests
        payloads = _majority(traits.payload_lengths)
        if payloads == OPENBSD_PAYLOAD:
            vote("openbsd", STRONG, "16-byte keepalive payload (uptime, random, SipHash)")
        elif payloads:
            vote("openbsd", MEDIUM, f"{payloads}-byte keepalive payload")
        if traits.inner_versions.get(6):
            vote("mikrotik", STRONG, "inner IPv6 keepalive (GRE over IPv6)")
        if traits.outer_protocols.get(TRUSTSEC):
            vote("cisco", STRONG, "Cisco MetaData (TrustSec) header before the inner IPv4")
        if traits.outer_protocols.get(HUAWEI_PT):
            vote("huawei", STRONG, "outer GRE protocol type 0x0004")
        if traits.cisco_ip_ids >= CISCO_ID_SHARE * requests:
            vote("cisco", MEDIUM, "inner IP ID = outer IP ID − 1 (one IOS counter)")
        ttl = _majority(traits.inner_ttls)
        if ttl == 64:
            vote("openbsd", WEAK, "inner TTL 64")
    if inner_addresses is not None and _private(inner_addresses[1]):
        vote("mikrotik", MEDIUM, f"inner destination {inner_addresses[1]} is private (behind NAT)")
    if observed_period is not None:
        by_period = {5.0: "huawei", 1.0: "juniper"}
        if observed_period in by_period:
            name = by_period[observed_period]
            vote(name, WEAK, f"period {observed_period:g} s ({PROFILES[name].title}'s default)")
    if not scores:
        return ProfileChoice(PROFILES["cisco"], AUTO, ("no distinguishing trait: Cisco IOS",))
    order = {name: index for index, name in enumerate(PROFILE_NAMES)}
    best = max(scores, key=lambda n: (scores[n], -order[n]))
    return ProfileChoice(PROFILES[best], AUTO, tuple(evidence[best]))


def _majority(counts: dict[int, int]) -> int | None:
    if not counts:
        return None
    return max(counts, key=lambda value: (counts[value], -value))


_PRIVATE = tuple(
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)


def _private(address: str) -> bool:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in _PRIVATE)


def describe(choice: ProfileChoice) -> str:
    """`mikrotik (auto: inner IPv6 keepalive …)` for reports."""
    why = "; ".join(choice.evidence)
    return f"{choice.profile.name} ({choice.source}{': ' + why if why else ''})"


def names(spec: Sequence[tuple[str | None, str]]) -> list[str]:
    """The profile names a spec mentions (for messages)."""
    return [name for _where, name in spec]


def running(name: str) -> Profile:
    """The profile whose machine runs an originator fingerprinted or declared as `name`:
    a profile that never originates keepalives is analysed as Cisco IOS."""
    profile = PROFILES[name]
    return profile if profile.originates else PROFILES["cisco"]
