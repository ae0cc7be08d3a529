"""A test host in its own network namespace, joined to this one by a veth pair.

Its link can be taken down to make a silent partition: packets vanish, no
connection is reset.  The pair gets a link-local /30 (169.254.213.0/30), and
only when no interface here already uses 169.254.0.0/16, so the test host can
never shadow a real address: the only host there is the one made here.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess


class NetnsUnavailable(Exception):
    """Network namespaces cannot be created here (by this machine or user)."""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


class TestHost:
    """A network namespace with one address, ``address``, reachable from here."""

    __test__ = False  # Not a pytest test class.

    host_address = "169.254.213.1"
    address = "169.254.213.2"

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.name = f"tc-{tag}"
        self.outside = f"tco{tag}"
        self.inside = f"tci{tag}"
        self.created = False

    def create(self) -> TestHost:
        if shutil.which("ip") is None:
            raise NetnsUnavailable("iproute2 is not installed")
        addresses = subprocess.run(
            ["ip", "-o", "addr", "show"], capture_output=True, text=True, timeout=10
        ).stdout
        if " 169.254." in addresses:
            raise NetnsUnavailable("169.254.0.0/16 is already in use on this machine")
        try:
            _ip("netns", "add", self.name)
        except subprocess.CalledProcessError as exc:
            raise NetnsUnavailable(exc.stderr.decode(errors="replace").strip()) from None
        self.created = True
        _ip("link", "add", self.outside, "type", "veth", "peer", "name", self.inside)
        _ip("link", "set", self.inside, "netns", self.name)
        _ip("addr", "add", f"{self.host_address}/30", "dev", self.outside)
        _ip("link", "set", self.outside, "up")
        _ip(
            "netns",
            "exec",
            self.name,
            "ip",
            "addr",
            "add",
            f"{self.address}/30",
            "dev",
            self.inside,
        )
        _ip("netns", "exec", self.name, "ip", "link", "set", self.inside, "up")
        _ip("netns", "exec", self.name, "ip", "link", "set", "lo", "up")
        return self

    def command(self, *args: str) -> list[str]:
        """``args`` as a command run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *args]

    def partition(self) -> None:
        """Take the link down: from now on packets are silently lost."""
        _ip("link", "set", self.outside, "down")

    def heal(self) -> None:
        """Bring the link back up."""
        _ip("link", "set", self.outside, "up")

    def destroy(self) -> None:
        if not self.created:
            return
        # Deleting the namespace deletes its end of the pair, and so the pair.
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=10)
        subprocess.run(["ip", "link", "del", self.outside], capture_output=True, timeout=10)
        self.created = False
