"""Edge checks with no web framework in them: client address, allowlists, timestamp window."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from functools import lru_cache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=64)
def parse_networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    """``203.0.113.10`` or ``10.0.0.0/8`` entries as networks (single addresses are /32).
    Settings refuse a malformed entry at start, so this never raises for them."""
    return tuple(ipaddress.ip_network(e, strict=True) for e in entries)


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def in_networks(value: str | None, entries: Sequence[str]) -> bool:
    if value is None:
        return False
    address = _address(value)
    if address is None:
        return False
    return any(address in net for net in parse_networks(tuple(entries)))


def client_address(
    peer: str | None, forwarded_for: str | None, trusted_proxies: Sequence[str]
) -> str | None:
    """The caller's address: the TCP peer, or, when the peer is a trusted proxy, the
    right-most ``X-Forwarded-For`` hop that is not itself a trusted proxy."""
    if peer is None or not forwarded_for or not in_networks(peer, trusted_proxies):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if _address(hop) is None:
            return None  # a garbled header from a trusted proxy: trust nothing
        if not in_networks(hop, trusted_proxies):
            return hop
    return hops[0] if hops else peer


ASCII_DIGITS = frozenset("0123456789")


def ascii_int(value: str | None, max_digits: int = 18) -> int | None:
    """``value`` as a non-negative integer when it is 1..``max_digits`` ASCII digits, else None.

    ``str.isdigit`` also accepts ``²``, Arabic-Indic or fullwidth digits, which ``int``
    then refuses or reads as something else: a header must never get that far.
    """
    if not value or len(value) > max_digits or not ASCII_DIGITS.issuperset(value):
        return None
    return int(value)


def timestamp_fresh(timestamp: str, now: float, skew_s: int) -> bool:
    """True for unix seconds within ``skew_s`` of ``now``."""
    seconds = ascii_int(timestamp, max_digits=12)
    return seconds is not None and abs(now - seconds) <= skew_s
