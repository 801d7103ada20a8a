"""Which network addresses a remote fetch may connect to: public unicast only, unless opted in.

Refused: unspecified (0.0.0.0, ::, imgproxy's CVE-2025-24354), loopback, private, link-local (which
holds the cloud metadata service, 169.254.169.254), carrier-grade NAT, multicast, reserved, and every
other address that is not global; an IPv4-mapped IPv6 address (::ffff:127.0.0.1) is judged as the IPv4
address it maps. `allow` lists networks an operator trusts on purpose (an internal image host, a test
server on 127.0.0.1); unspecified and multicast addresses are refused even then.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

__all__ = ["IPAddress", "IPNetwork", "refusal"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}


def refusal(address: IPAddress, allow: Iterable[IPNetwork] = ()) -> str | None:
    """Why `address` may not be connected to (None: it may)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        reason = refusal(address.ipv4_mapped, allow)
        return f"IPv4-mapped {reason}" if reason else None
    if address.is_unspecified:
        return f"{address} is the unspecified address"
    if address.is_multicast:
        return f"{address} is a multicast address"
    if any(address in network for network in allow if network.version == address.version):
        return None
    if address in _METADATA:
        return f"{address} is the cloud metadata address"
    for kind in ("loopback", "link_local", "reserved", "private"):
        if getattr(address, f"is_{kind}"):
            return f"{address} is a {kind.replace('_', '-')} address"
    if not address.is_global:
        return f"{address} is not a public address"
    return None
