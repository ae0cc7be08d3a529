"""What the bench scenarios need to know about the server they load."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Target:
    """A running server: where to subscribe and publish, and whose CPU and RSS count.

    ``name`` keys the results ("ours", "nchan"); ``label`` says what ran (processes,
    workers).  A channel is a path such as ``/bench/x/0``: subscribe with a WebSocket
    upgrade of ``sub_prefix + channel`` on any of ``sub_ports``, publish with
    ``POST pub_prefix + channel`` on ``pub_port``; ``published`` are the statuses that mean
    "published".  ``pids`` are the server's processes (summed for CPU and RSS);
    ``extra_pids`` are helpers reported apart (a Redis).
    """

    name: str
    label: str
    sub_ports: list[int]
    pub_port: int
    pids: list[int]
    sub_prefix: str = ""
    pub_prefix: str = ""
    published: tuple[int, ...] = (202,)
    extra_pids: list[int] = field(default_factory=list)

    def sub_path(self, channel: str) -> str:
        return self.sub_prefix + channel

    def pub_path(self, channel: str) -> str:
        return self.pub_prefix + channel
