"""The private-address guard: which addresses a public-facing bot must not fetch from.

Unless the caller allows private addresses (the operator's own CLI may; URLs from Discord
may not), every hop of a fetch resolves the host with `vetted_address`, which refuses it
when any address is private, loopback, link-local, metadata and the like, and returns the
address to connect to, so a DNS answer that changes between the check and the connection
cannot reach an internal service.
"""

from __future__ import annotations

import ipaddress
import socket

from store.errors import FetchError

_METADATA_ADDRESSES = {
    ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack instance metadata
    ipaddress.ip_address("fd00:ec2::254"),  # AWS instance metadata over IPv6
}
_CGNAT = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT: not the public internet

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def address_problem(address: str | IPAddress) -> str | None:
    """Why `address` must not be fetched from a public-facing bot, or None when it is a
    public internet address. CGNAT (100.64.0.0/10) and IPv4-mapped IPv6 count as what
    they map to."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in _METADATA_ADDRESSES:
        return "a cloud metadata address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "a carrier-grade NAT (private) address"
    if ip.is_private:
        return "a private address"
    if ip.is_reserved or not ip.is_global:
        return "a reserved address"
    return None


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(f"cannot resolve the host {host!r} ({exc}); check the URL") from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise FetchError(f"the host {host!r} has no address; check the URL")
    return addresses


def vetted_address(host: str, port: int) -> str:
    """The address to connect to, after checking every address the host resolves to."""
    addresses = _resolve(host, port)
    for address in addresses:
        problem = address_problem(address.split("%", 1)[0])
        if problem:
            raise FetchError(
                f"{host} resolves to {address}, {problem}, which qabot does not fetch from "
                "here; the operator's CLI may, with --allow-private (for a feed: "
                "`qabot feeds add URL --allow-private`)"
            )
    return addresses[0]
