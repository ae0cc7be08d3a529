"""Make tornado-channels.d.ts again from the client's JSDoc: ``python -m tests.helpers.js_types``.

The JSDoc in tornado-channels.js is the one source of the client's types; the
shipped declarations are what TypeScript's own compiler makes of it, and a
test checks that the shipped file is current.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import tornado_channels

STATIC = Path(tornado_channels.__file__).parent / "web" / "static"
MODULE = STATIC / "tornado-channels.js"
DECLARATIONS = STATIC / "tornado-channels.d.ts"
#: The compiler, for the declarations and the tests only (never a dependency of the package).
TYPESCRIPT = "typescript@5.9.3"
#: The one way the declarations are made.
TSC_ARGS = ("--declaration", "--allowJs", "--emitDeclarationOnly")
NPM_TIMEOUT = 300


def npm(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run npm (bounded), quietly, without audits or funding notices."""
    binary = shutil.which("npm")
    assert binary is not None, "npm is not installed"
    return subprocess.run(
        [binary, *args, "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=NPM_TIMEOUT,
        check=False,
    )


def install_typescript(project: Path) -> Path:
    """Install the pinned TypeScript into ``project`` (made a package if bare); return its tsc."""
    if not (project / "package.json").exists():
        (project / "package.json").write_text('{"private": true}\n')
    result = npm("install", TYPESCRIPT, cwd=project)
    assert result.returncode == 0, result.stderr
    return project / "node_modules" / ".bin" / "tsc"


def generate(tsc: Path) -> str:
    """The declarations ``tsc`` makes of tornado-channels.js's JSDoc, as text."""
    with tempfile.TemporaryDirectory(prefix="tc-js-types-") as out:
        result = subprocess.run(
            [str(tsc), *TSC_ARGS, "--outDir", out, str(MODULE)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return (Path(out) / DECLARATIONS.name).read_text()


def main() -> None:
    """Write tornado-channels.d.ts from the JSDoc, with the pinned TypeScript."""
    with tempfile.TemporaryDirectory(prefix="tc-typescript-") as project:
        DECLARATIONS.write_text(generate(install_typescript(Path(project))))


if __name__ == "__main__":
    main()
