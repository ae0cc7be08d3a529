"""The optional mypyc build: what it compiles, and that the suite runs the mode it says it does.

CI runs the whole suite twice: pure (``TORNADO_CHANNELS_TEST_COMPILED=0``), then
after ``make compile`` (``=1``); these tests make a pass that silently ran the
other mode fail.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest

from tornado_channels.compiled import HOT_MODULES, compiled_modules, source_path, stale_modules

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


@pytest.mark.skipif(EXPECTED != "0", reason="the pure pass only")
def test_the_pure_pass_runs_no_compiled_module() -> None:
    """Without a build, the hot path is the plain Python sources."""
    assert compiled_modules() == []


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
