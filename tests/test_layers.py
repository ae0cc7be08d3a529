"""The layers' dependencies point one way: core <- brokers <- node <- web <- server."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tornado_channels"

#: What each layer may import from the package (besides itself); the root
#: modules (hub, node, subscription) are the node layer.
ALLOWED = {
    "core": set(),
    "brokers": {"core"},
    "node": {"core", "brokers"},
    "web": {"core", "brokers", "node"},
    "server": {"core", "brokers", "node", "web", "outbox"},
    "outbox": {"core", "brokers", "node"},
    # The clients run in other programs: never the server's node or web layers.
    "client": {"core", "brokers"},
}
#: Third-party and I/O modules a layer may not import at all.
FORBIDDEN = {
    "core": {"tornado", "redis", "prometheus_client", "asyncio", "socket", "uvloop"},
    "brokers": {"tornado", "prometheus_client"},
    "node": {"tornado", "redis", "prometheus_client"},
    "web": {"redis"},
    "server": set(),
    "outbox": {"tornado", "redis", "prometheus_client"},
    "client": {"tornado", "prometheus_client"},
}
ROOT_MODULES = {"hub", "node", "subscription"}


def layer_of(path: Path) -> str | None:
    """The layer a module belongs to, or None for the package's facade modules."""
    relative = path.relative_to(PACKAGE)
    if len(relative.parts) > 1:
        return relative.parts[0]
    return "node" if relative.stem in ROOT_MODULES else None


def imports(path: Path) -> list[tuple[str, int]]:
    """(absolute module name, line) for every import in ``path``."""
    tree = ast.parse(path.read_text())
    package = ["tornado_channels", *path.relative_to(PACKAGE).parent.parts]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
                if node.module is None:
                    found += [(f"{name}.{alias.name}", node.lineno) for alias in node.names]
                    continue
            else:
                name = node.module or ""
            found.append((name, node.lineno))
    return found


def target_layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "tornado_channels" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in ALLOWED else ("node" if parts[1] in ROOT_MODULES else None)


MODULES = sorted(path for path in PACKAGE.rglob("*.py") if layer_of(path) is not None)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_module_imports_only_from_its_own_layer_and_those_below(path: Path) -> None:
    """No module imports upward, and the pure core imports no I/O or third-party package."""
    layer = layer_of(path)
    assert layer is not None
    for module, line in imports(path):
        target = target_layer(module)
        if target is not None and target != layer:
            assert target in ALLOWED[layer], f"{path.name}:{line} ({layer}) imports {module}"
        top = module.split(".")[0]
        assert top not in FORBIDDEN[layer], f"{path.name}:{line} ({layer}) imports {module}"


def test_nothing_but_the_entry_point_imports_the_server() -> None:
    """The server layer is the top: only ``__main__`` starts it."""
    for path in PACKAGE.rglob("*.py"):
        if layer_of(path) == "server" or path.name == "__main__.py":
            continue
        for module, line in imports(path):
            assert target_layer(module) != "server", f"{path}:{line} imports {module}"


def test_the_check_sees_relative_imports() -> None:
    """The import reader resolves relative imports (else the tests above would pass vacuously)."""
    assert "tornado_channels.core.handshake" in dict(imports(PACKAGE / "web" / "websocket.py"))
    assert "tornado_channels.node" in dict(imports(PACKAGE / "web" / "context.py"))


def test_the_web_layer_never_probes_a_connection_for_what_it_offers() -> None:
    """No getattr/hasattr on a connection in web/: the seam is web/server_connection.py's type."""
    probes = []
    for path in sorted((PACKAGE / "web").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "hasattr")
                and node.args
                and "connection" in ast.unparse(node.args[0])
            ):
                probes.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    assert not probes, probes


def module_name(path: Path) -> str:
    """The dotted name of the package's module at ``path``."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_two_modules_import_each_other() -> None:
    """The package's imports form no circle, however long (publish_request's pieces among them)."""
    names = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in names.items():
        found = set()
        for module, _ in imports(path):
            while module and module not in names:
                module = module.rpartition(".")[0]  # ``from .x import name``: the module x.
            if module not in ("", name, "tornado_channels"):
                found.add(module)
        graph[name] = found
    assert "tornado_channels.web.publish_body" in graph["tornado_channels.web.publish_request"]
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        pytest.fail(f"an import circle: {' -> '.join(exc.args[1])}")
