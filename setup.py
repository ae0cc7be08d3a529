"""Packaging: metadata lives in setup.cfg.

``TORNADO_CHANNELS_COMPILE=1`` also compiles the hot path with mypyc (``make compile``;
tornado_channels/compiled.py lists it).  Without it the package is pure Python.
"""

import os
import runpy

from setuptools import setup


def ext_modules() -> list:
    """The mypyc extensions when asked for, else none."""
    if os.environ.get("TORNADO_CHANNELS_COMPILE") != "1":
        return []
    try:
        from mypyc.build import mypycify
    except ImportError as exc:
        raise SystemExit(
            "TORNADO_CHANNELS_COMPILE=1 needs mypy (which ships mypyc) and the package's "
            "own requirements where the build runs (mypyc type-checks against them): "
            "make compile, or pip install mypy wheel and the requirements, then "
            "TORNADO_CHANNELS_COMPILE=1 pip install --no-build-isolation ."
        ) from exc
    # Read without importing the package (its dependencies may not be installed yet).
    listing = runpy.run_path(os.path.join("tornado_channels", "compiled.py"))
    paths = [listing["source_path"](module) for module in listing["HOT_MODULES"]]
    # One shared library for all of them, inside the package (tornado_channels/_compiled__mypyc),
    # so it imports wherever the package does, also from scripts run outside the project root.
    return mypycify(paths, opt_level="3", group_name="tornado_channels._compiled")


setup(ext_modules=ext_modules())
