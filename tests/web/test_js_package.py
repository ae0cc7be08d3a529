"""The JS client as an npm package: it packs, installs, type-checks; its types come from JSDoc."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

import tornado_channels

from ..helpers.js_types import DECLARATIONS, STATIC, TYPESCRIPT, generate, npm

EXAMPLE = """\
import { connect, closeLabel } from "tornado-channels";
import type { Client, Message, RecoveryOutcome } from "tornado-channels";

const client: Client = connect("wss://example.com/users/1", {
  since: "9f3c01ab:42",
  transport: "auto",
  token: async () => "a-token",
  onMessage: (message: Message) => {
    const text: string = "data" in message ? message.data : String(message.bytes?.length);
    const where: string | undefined = message.channel;
    console.log(message.position, text, where);
  },
  onRecovery: (outcome: RecoveryOutcome) => outcome.recovered || console.warn(outcome.reason),
  onStatus: (status) => console.log(status.state, status.transport, status.retryIn),
});
const label: string = closeLabel(4001);
const sent: boolean = client.send("hi");
client.close();
export { label, sent };
"""

#: Wrong on purpose: an unknown transport, a callback of the wrong type, a read-only state set.
BROKEN = """\
import { connect } from "tornado-channels";
const client = connect("/users/1", { transport: "carrier-pigeon", onMessage: (n: number) => n });
client.state = "live";
"""

TSCONFIG = {
    "compilerOptions": {
        "strict": True,
        "noEmit": True,
        "module": "nodenext",
        "moduleResolution": "nodenext",
        "target": "es2022",
        "lib": ["es2022", "dom"],
        "skipLibCheck": False,
    },
    "files": ["example.ts"],
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh project with the packed client (and TypeScript) installed from the registry."""
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed")
    packed = tmp_path_factory.mktemp("pack")
    result = npm("pack", "--pack-destination", str(packed), cwd=STATIC)
    assert result.returncode == 0, result.stderr
    [tarball] = packed.glob("tornado-channels-*.tgz")
    with tarfile.open(tarball) as archive:
        names = sorted(archive.getnames())
    assert names == [
        "package/README.md",
        "package/package.json",
        "package/tornado-channels.d.ts",
        "package/tornado-channels.js",
    ]
    app = tmp_path_factory.mktemp("app")
    (app / "package.json").write_text(
        json.dumps({"name": "app", "private": True, "type": "module"})
    )
    result = npm("install", str(tarball), TYPESCRIPT, cwd=app)
    assert result.returncode == 0, result.stderr
    (app / "tsconfig.json").write_text(json.dumps(TSCONFIG))
    return app


def tsc(app: Path, source: str) -> subprocess.CompletedProcess[str]:
    """Type-check ``source`` as the project's example.ts."""
    (app / "example.ts").write_text(source)
    return subprocess.run(
        [str(app / "node_modules" / ".bin" / "tsc"), "--noEmit", "-p", str(app)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_package_installs_from_its_tarball_and_imports_in_node(project: Path) -> None:
    """Npm pack + npm install <tarball>; Node imports it by name and finds connect()."""
    node = shutil.which("node")
    assert node is not None
    script = (
        "import('tornado-channels').then((m) => console.log(typeof m.connect, m.closeLabel(1001)))"
    )
    result = subprocess.run(
        [node, "--input-type=module", "-e", script],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "function server restarting"


def test_an_example_type_checks_against_the_declarations(project: Path) -> None:
    """Tsc --noEmit accepts a typical use of connect() with its options and callbacks."""
    result = tsc(project, EXAMPLE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_misuse_fails_the_type_check(project: Path) -> None:
    """The declarations are really checked: a bad transport, callback or assignment is an error."""
    result = tsc(project, BROKEN)
    assert result.returncode != 0
    assert "carrier-pigeon" in result.stdout
    assert "Cannot assign to 'state' because it is a read-only property" in result.stdout


def test_the_package_version_is_the_servers() -> None:
    """package.json's version is the Python package's, and its exports name both files."""
    manifest = json.loads((STATIC / "package.json").read_text())
    assert manifest["version"] == tornado_channels.__version__
    assert manifest["exports"]["."] == {
        "types": "./tornado-channels.d.ts",
        "default": "./tornado-channels.js",
    }


def test_the_channel_page_uses_the_module_and_has_no_copy_of_its_logic() -> None:
    """channel.js imports connect() from the module and opens no WebSocket or EventSource itself."""
    page = (STATIC / "channel.js").read_text()
    assert 'from "./tornado-channels.js"' in page
    for own in ("new WebSocket", "new EventSource", "since=", "lastEventId"):
        assert own not in page, own


def test_the_shipped_declarations_are_made_from_the_jsdoc(project: Path) -> None:
    """tornado-channels.d.ts is exactly what tsc makes of the JSDoc (`make js-types` remakes it)."""
    fresh = generate(project / "node_modules" / ".bin" / "tsc")
    assert DECLARATIONS.read_text() == fresh, "stale tornado-channels.d.ts: run `make js-types`"


def test_every_export_of_the_module_is_declared_with_its_types() -> None:
    """Each name the module exports is declared, and so is every type its options name."""
    module = (STATIC / "tornado-channels.js").read_text()
    declarations = DECLARATIONS.read_text()
    exported = set(re.findall(r"^export (?:const|function) (\w+)", module, re.M))
    declared = set(re.findall(r"^export (?:const|function) (\w+)", declarations, re.M))
    assert exported == declared == {"CLOSE_LABELS", "closeLabel", "connect"}
    types = set(re.findall(r"^export type (\w+)", declarations, re.M))
    assert types >= {
        "Position", "TextMessage", "BinaryMessage", "Message", "RecoveryOutcome", "State",
        "TransportName", "TransportChoice", "Status", "CloseInfo", "PresenceEvent",
        "TokenValue", "TokenOption", "ConnectOptions", "Client",
    }  # fmt: skip
