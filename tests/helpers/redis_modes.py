"""Private Redis deployments in every mode the broker supports: standalone, Sentinel, Cluster.

Each starts real ``redis-server`` processes on free loopback ports, in its
own directory, and ends them by PID.  A :class:`RedisMode` says how a
server process reaches it (its command-line flags) and how a test breaks
it (kill the master), so one scenario runs against all three.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from .support import (
    WAIT,
    RedisServer,
    _end,
    free_port,
    wait_for_port,
)

#: Redis Cluster and Sentinel detect a dead master after this long (ms).
NODE_TIMEOUT = 1000
#: A replica's first sync starts at once (Redis 7 waits 5 s for more replicas by default).
FAST_SYNC = ["--repl-diskless-sync-delay", "0"]


def _cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too, both below the ephemeral range."""
    return free_port(cluster=True)


def _cli(port: int, *args: str, timeout: float = WAIT) -> str:
    binary = shutil.which("redis-cli")
    assert binary, "redis-cli is not installed"
    result = subprocess.run(
        [binary, "-p", str(port), *args], capture_output=True, timeout=timeout, check=False
    )
    return result.stdout.decode()


def _eventually(check: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout}s")


class RedisMode:
    """A running Redis deployment, as the server and the tests see it."""

    name = "standalone"
    #: The key prefix the servers of one test share (each test its own).
    prefix = "tornado_channels:"

    def args(self) -> list[str]:
        """The flags that make a server process use it, under :attr:`prefix`."""
        return [*self.connection_args(), "--redis-prefix", self.prefix]

    def connection_args(self) -> list[str]:
        """The flags that reach it."""
        raise NotImplementedError

    def kill_master(self, wait: bool = True, slot: int | None = None) -> None:
        """``kill -9`` a master holding data; with ``wait``, return once Redis serves again.

        On a cluster, ``slot`` picks the master that serves it.
        """
        self._kill(slot)
        if wait:
            self.wait_serving()

    def _kill(self, slot: int | None) -> None:
        raise NotImplementedError

    def wait_serving(self) -> None:
        """Return once a master serves every slot again (promoted, or restarted empty)."""
        raise NotImplementedError

    def stop(self) -> None:
        """End every process it started."""
        raise NotImplementedError


class Standalone(RedisMode):
    """One private Redis."""

    def __init__(self) -> None:
        self.server = RedisServer().start()

    def connection_args(self) -> list[str]:
        return ["--redis-url", self.server.url]

    def _kill(self, slot: int | None) -> None:
        self.server.kill()

    def wait_serving(self) -> None:
        """Start it again, empty (it keeps nothing on disk)."""
        if self.server.process is None:
            self.server.start()

    def stop(self) -> None:
        self.server.stop()


class Sentinel(RedisMode):
    """One master, one replica, three sentinels watching them as ``mymaster``."""

    name = "sentinel"
    service = "mymaster"

    def __init__(self) -> None:
        self.master = RedisServer(extra=FAST_SYNC).start()
        self.replica = RedisServer(
            extra=[*FAST_SYNC, "--replicaof", "127.0.0.1", str(self.master.port)]
        ).start()
        self.dir = Path(tempfile.mkdtemp(prefix="tc-sentinel-"))
        self.ports = [free_port() for _ in range(3)]
        self.sentinels: list[subprocess.Popen[bytes]] = []
        for port in self.ports:
            config = self.dir / f"sentinel-{port}.conf"
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.dir}\n"
                f"sentinel monitor {self.service} 127.0.0.1 {self.master.port} 2\n"
                f"sentinel down-after-milliseconds {self.service} {NODE_TIMEOUT}\n"
                f"sentinel failover-timeout {self.service} 5000\n"
                f"sentinel parallel-syncs {self.service} 1\n"
            )
            binary = shutil.which("redis-server")
            assert binary
            self.sentinels.append(
                subprocess.Popen(
                    [binary, str(config), "--sentinel", "--loglevel", "warning"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        for port in self.ports:
            wait_for_port(port)
        _eventually(self._ready, "sentinels see the master and its replica")

    def _ready(self) -> bool:
        if "master_link_status:up" not in _cli(self.replica.port, "INFO", "replication"):
            return False
        replicas = _cli(self.ports[0], "SENTINEL", "replicas", self.service)
        sentinels = _cli(self.ports[0], "SENTINEL", "sentinels", self.service)
        return str(self.replica.port) in replicas and sentinels.count("name") >= 2

    def master_port(self) -> int:
        """The port of the master the sentinels name now."""
        answer = _cli(self.ports[0], "SENTINEL", "get-master-addr-by-name", self.service)
        return int(answer.split()[1])

    def connection_args(self) -> list[str]:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.ports)
        return [
            "--redis-sentinel",
            hosts,
            "--redis-sentinel-master",
            self.service,
            "--redis-url",
            "redis:///0",
        ]

    def _kill(self, slot: int | None) -> None:
        self._old = self.master_port()
        (self.master if self._old == self.master.port else self.replica).kill()

    def wait_serving(self) -> None:
        """Wait for the sentinels to promote the replica."""
        _eventually(lambda: self.master_port() != self._old, "a replica promoted")

    def stop(self) -> None:
        for process in self.sentinels:
            _end(process)
        self.master.stop()
        self.replica.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Cluster(RedisMode):
    """A Redis Cluster of three masters, each with one replica."""

    name = "cluster"

    def __init__(self, masters: int = 3) -> None:
        self.nodes = [
            RedisServer(
                _cluster_port(),
                extra=[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    str(NODE_TIMEOUT),
                    *FAST_SYNC,
                ],
            ).start()
            for _ in range(masters * 2)
        ]
        binary = shutil.which("redis-cli")
        assert binary
        subprocess.run(
            [
                binary,
                "--cluster",
                "create",
                *(f"127.0.0.1:{node.port}" for node in self.nodes),
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            capture_output=True,
            timeout=60,
            check=True,
        )
        _eventually(self._ready, "the cluster is up")

    def _ready(self) -> bool:
        for node in self.nodes:
            if node.process is None:
                continue
            if "cluster_state:ok" not in _cli(node.port, "CLUSTER", "INFO"):
                return False
            replication = _cli(node.port, "INFO", "replication")
            # A replica that never synced cannot take over: wait for every link.
            if "role:slave" in replication and "master_link_status:up" not in replication:
                return False
        return len(self.masters()) == len(self.nodes) // 2

    def masters(self) -> list[RedisServer]:
        """The nodes that serve slots now, as a live node sees the cluster."""
        alive = [node for node in self.nodes if node.process is not None]
        by_port = {node.port: node for node in alive}
        found = []
        for line in _cli(alive[0].port, "CLUSTER", "NODES").splitlines():
            fields = line.split()
            if len(fields) < 9 or "master" not in fields[2] or "fail" in fields[2]:
                continue
            port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
            if port in by_port:
                found.append(by_port[port])
        return found

    def url(self) -> str:
        return self.nodes[0].url

    def connection_args(self) -> list[str]:
        live = next(node for node in self.nodes if node.process is not None)
        return ["--redis-url", live.url, "--redis-cluster"]

    def _kill(self, slot: int | None) -> None:
        masters = self.masters() if slot is None else [self.master_of(slot)]
        masters[0].kill()

    def master_of(self, slot: int) -> RedisServer:
        """The master serving ``slot`` now."""
        alive = [node for node in self.nodes if node.process is not None]
        by_port = {node.port: node for node in alive}
        for line in _cli(alive[0].port, "CLUSTER", "NODES").splitlines():
            fields = line.split()
            if "master" not in fields[2] or "fail" in fields[2]:
                continue
            for span in fields[8:]:
                low, _, high = span.partition("-")
                if low.isdigit() and int(low) <= slot <= int(high or low):
                    return by_port[int(fields[1].split("@")[0].rsplit(":", 1)[1])]
        raise AssertionError(f"no master serves slot {slot}")

    def wait_serving(self) -> None:
        """Wait for the dead master's replica to serve its slots."""
        alive = next(node for node in self.nodes if node.process is not None)
        _eventually(
            lambda: (
                "cluster_state:ok" in _cli(alive.port, "CLUSTER", "INFO")
                and len(self.masters()) == len(self.nodes) // 2
            ),
            "a replica took over",
        )

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def start_mode(name: str) -> RedisMode:
    """A running deployment of the named mode."""
    modes: dict[str, type[RedisMode]] = {
        "standalone": Standalone,
        "sentinel": Sentinel,
        "cluster": Cluster,
    }
    return modes[name]()
