"""Which cross-site requests may connect and publish: one policy for every edge (pure logic).

Browsers say where a request comes from (``Origin``, and ``Sec-Fetch-Site``
in all current ones); other clients say nothing and are not subject to it.
A request is allowed when it comes from the page's own origin, from an origin
the configuration trusts, or from no browser at all.  WebSocket handshakes,
event streams and POSTs get the same answer, so a page elsewhere can neither
read a channel through a visitor's browser nor make it publish.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from urllib.parse import urlsplit


def same_origin(origin: str, headers: Mapping[str, str]) -> bool:
    """Whether ``origin`` names the host the request was sent to (as Tornado compares them)."""
    return urlsplit(origin).netloc.lower() == headers.get("host", "").lower()


def allowed(headers: Mapping[str, str], trusted: Collection[str]) -> bool:
    """Whether a request with ``headers`` (read by lower-case name) may proceed.

    ``trusted`` are the origins the configuration trusts.

    The algorithm of Tornado's ``cross_origin_protection`` (and Go's
    ``CrossOriginProtection``): when the browser sends ``Sec-Fetch-Site``,
    it decides, since the browser computed it from both whole origins
    (scheme, host and port) and no page can set it: ``same-origin``, or
    ``none`` for a user's own navigation, passes; ``same-site`` and
    ``cross-site`` pass only from a trusted origin.  Only without it (an
    older browser, plain HTTP, or no browser at all) is ``Origin`` compared
    with ``Host``, a weaker test: it ignores the scheme (a page on
    ``http://host`` matches a server on ``https://host``), and a proxy may
    have rewritten ``Host``.
    """
    site = headers.get("sec-fetch-site")
    origin = headers.get("origin")
    if site is not None:
        if site in ("same-origin", "none"):
            return True
        return origin is not None and origin in trusted
    if origin is None:
        return True  # Not a browser (a cross-site fetch always carries an Origin).
    return origin in trusted or same_origin(origin, headers)
