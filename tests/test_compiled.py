"""The optional mypyc build: what it compiles, and that the suite runs the mode it says it does.

CI runs the whole suite twice: pure (``TORNADO_CHANNELS_TEST_COMPILED=0``), then
after ``make compile`` (``=1``); these tests make a pass that silently ran the
other mode fail.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tornado_channels.compiled import (
    HOT_MODULES,
    compiled_modules,
    extension_origin,
    source_path,
    stale_modules,
)

from .helpers import free_port

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = os.environ.get("TORNADO_CHANNELS_TEST_COMPILED")


@pytest.mark.parametrize("module", HOT_MODULES)
def test_each_hot_module_is_a_source_file_of_the_package(module: str) -> None:
    """Each listed module exists as the .py file mypyc is given, and imports."""
    assert (ROOT / source_path(module)).is_file()
    assert importlib.import_module(module).__name__ == module


def test_no_compiled_module_is_older_than_its_source() -> None:
    """A build older than an edit would run the old code: make compile again."""
    assert stale_modules() == []


@pytest.mark.skipif(EXPECTED != "1", reason="the compiled pass only")
def test_the_compiled_pass_runs_every_hot_module_compiled() -> None:
    """After make compile, every hot module is imported from its extension."""
    assert compiled_modules() == list(HOT_MODULES)
    for module in HOT_MODULES:
        loader = importlib.import_module(module).__loader__
        assert isinstance(loader, importlib.machinery.ExtensionFileLoader), module


@pytest.mark.processes
@pytest.mark.skipif(EXPECTED != "1", reason="the compiled pass only")
def test_the_server_refuses_to_start_on_a_build_older_than_its_sources() -> None:
    """A source edited after make compile stops the server at start, naming the module."""
    module = "tornado_channels.core.latency"
    origin = extension_origin(module)
    assert origin is not None
    source = ROOT / source_path(module)
    before = source.stat()
    built = os.stat(origin).st_mtime
    os.utime(source, (before.st_atime, built + 60))
    try:
        assert stale_modules() == [module]
        done = subprocess.run(
            [sys.executable, "-m", "tornado_channels", "--port", str(free_port())],
            capture_output=True,
            timeout=60,
            check=False,
        )
    finally:
        os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert done.returncode == 2, done.stderr
    assert b"older than their sources" in done.stderr
    assert module.encode() in done.stderr
    assert stale_modules() == []


@pytest.mark.skipif(EXPECTED != "0", reason="the pure pass only")
def test_the_pure_pass_runs_no_compiled_module() -> None:
    """Without a build, the hot path is the plain Python sources."""
    assert compiled_modules() == []
    for module in HOT_MODULES:
        loader = importlib.import_module(module).__loader__
        assert isinstance(loader, importlib.machinery.SourceFileLoader), module


def test_a_host_application_can_subclass_node_hub_and_memory_broker() -> None:
    """Node, Hub and MemoryBroker take interpreted subclasses, compiled or not."""
    from tornado_channels.brokers.memory import MemoryBroker
    from tornado_channels.hub import Hub
    from tornado_channels.node import Node

    class AuditedBroker(MemoryBroker):
        kind = "audited"

    class QuietHub(Hub):
        pass

    class AuditedNode(Node):
        def describe(self) -> str:
            return f"audited {self.broker.kind}"

    node = AuditedNode(AuditedBroker())
    assert node.describe() == "audited audited"
    assert isinstance(QuietHub(), Hub)
