"""The hot path's modules, which ``make compile`` builds with mypyc: which are, and which are stale.

Compiling is optional.  The same sources run as plain Python when nothing is
built (the tests run both ways); an extension module next to its ``.py`` is
what Python imports first, so a built tree uses it with nothing else to set.
This file imports only the standard library: setup.py reads :data:`HOT_MODULES`
from it before anything is installed.
"""

from __future__ import annotations

import os
from importlib.machinery import EXTENSION_SUFFIXES

#: Every POST and every delivery runs through these (docs/performance.md has
#: the profile that chose them and what compiling them measured).  Left out:
#: the Redis broker, whose publishes cost Redis and the network far more than
#: its Python (not measured compiled); the Tornado handlers, which host
#: applications subclass; and everything off the per-message path.
HOT_MODULES = (
    "tornado_channels.core.channels",
    "tornado_channels.core.frames",
    "tornado_channels.core.history",
    "tornado_channels.core.http1",
    "tornado_channels.core.idempotency",
    "tornado_channels.core.latency",
    "tornado_channels.core.partitions",
    "tornado_channels.core.publication",
    "tornado_channels.core.trie",
    "tornado_channels.brokers.memory",
    "tornado_channels.hub",
    "tornado_channels.node",
    "tornado_channels.subscription",
    "tornado_channels.server.exchange",
    "tornado_channels.server.wire",
    "tornado_channels.web.connection",
    "tornado_channels.web.publish_request",
    "tornado_channels.web.publishing",
)


def source_path(module: str) -> str:
    """The ``.py`` file of ``module``, relative to the project's root (what mypyc is given)."""
    return module.replace(".", "/") + ".py"


#: The package's own folder: the hot modules' sources, and their builds next to them.
PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _stem(module: str) -> str:
    """``module``'s path in the package's folder without its suffix (``.py``, or a build's)."""
    return os.path.join(PACKAGE_DIR, *module.split(".")[1:])


def extension_origin(module: str) -> str | None:
    """The extension file ``module`` is imported from, or None when it runs as Python.

    Read from the package's folder, where Python's import looks first for an
    extension and then for the source, not from the imported module: a
    mypyc-built module's ``__file__`` and spec name a path that does not exist.
    """
    for suffix in EXTENSION_SUFFIXES:
        path = _stem(module) + suffix
        if os.path.exists(path):
            return path
    return None


def compiled_modules() -> list[str]:
    """Those of :data:`HOT_MODULES` that this interpreter imports from an extension module."""
    return [module for module in HOT_MODULES if extension_origin(module) is not None]


def stale_modules() -> list[str]:
    """Compiled modules whose source changed after the build: they run the old code.

    Python imports the extension module whatever its age, so an edit to a
    compiled module's source would silently not run; the server refuses to
    start and a test fails (``make compile`` again, or ``make uncompile``).
    """
    stale = []
    for module in HOT_MODULES:
        origin = extension_origin(module)
        if origin is None:
            continue
        source = _stem(module) + ".py"
        if os.path.exists(source) and os.path.getmtime(source) > os.path.getmtime(origin):
            stale.append(module)
    return stale
