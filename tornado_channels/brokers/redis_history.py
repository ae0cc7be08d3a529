"""History in Redis: positions, the streams they index, and recovery from them.

One Lua script takes the next number of the shared sequence (``<prefix>seq``),
appends to the target's stream (``<prefix>h:c:<channel>`` or
``<prefix>h:t:<subtree>``), trims it by size and age (remembering the highest
trimmed number in ``<prefix>floors``), and publishes the envelope with its
position, atomically: positions and deliveries can never disagree.
``<prefix>epoch`` changes when Redis loses its data, which makes old positions
unrecoverable, and says so.

Streams nobody has published to for the history age are dropped a few at a
time by later publishes (``<prefix>active`` orders them by last publish),
their last number kept as their floor, so memory stays bounded and a resume
from before them fails loudly instead of silently.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from importlib import resources

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from ..core.channels import Channel
from ..core.history import LOST, Entry, channel_keys, merge, stream_key
from ..core.publication import Position, Publication, Recovery, decode, encode_head

#: The publish script (see publish.lua for its keys and arguments).
PUBLISH_SCRIPT = (resources.files(__package__) / "publish.lua").read_text()


class RedisHistory:
    """The history side of a :class:`~tornado_channels.redis_broker.RedisBroker`.

    Its methods raise Redis's own errors; the broker turns them into its own.
    """

    def __init__(self, prefix: bytes, size: int, age: float) -> None:
        self._prefix = prefix
        self._seq_key = prefix + b"seq"
        self._epoch_key = prefix + b"epoch"
        self._floors_key = prefix + b"floors"
        self._active_key = prefix + b"active"
        self._size = size
        self._age = age
        self._client: Redis | None = None
        self._script: AsyncScript | None = None

    def bind(self, client: Redis) -> None:
        """Use ``client`` from now on (the broker's publishing client)."""
        self._client = client
        self._script = client.register_script(PUBLISH_SCRIPT)

    async def publish(self, publications: Sequence[Publication]) -> list[Position]:
        """Record and publish ``publications`` in one script call; return their positions.

        One round trip and one atomic script for the whole batch: the
        messages get consecutive positions and are published in order, all
        of them or (if the script cannot run) none.
        """
        assert self._script is not None
        keys = [self._seq_key, self._epoch_key, self._floors_key, self._active_key]
        args: list[bytes | str | int] = [
            secrets.token_hex(4),  # The epoch, if this publish starts one.
            self._size,
            int(self._age * 1000),
        ]
        for publication in publications:
            key = stream_key(publication.target)
            keys.append(self._prefix + b"h:" + key)
            args += (encode_head(publication.target), publication.payload, self._prefix + key)
        epoch, first = await self._script(keys=keys, args=args)
        epoch = epoch.decode("ascii")
        return [Position(epoch, int(first) + i) for i in range(len(publications))]

    async def head(self) -> Position:
        """The latest position (starting an epoch if none exists yet)."""
        assert self._client is not None
        # SET NX: a client that starts before any publish still gets the
        # epoch that the first publish will use.
        await self._client.set(self._epoch_key, secrets.token_hex(4), nx=True)
        epoch, seq = await self._client.mget(self._epoch_key, self._seq_key)
        if not isinstance(epoch, bytes):
            raise RedisError("Redis lost the epoch it was just given")
        return Position(epoch.decode("ascii"), int(seq or 0))

    async def recover(self, channel: Channel, since: Position) -> Recovery:
        """Merge the channel's and its subtrees' streams after ``since``."""
        assert self._client is not None
        streams = [self._prefix + b"h:" + key for key in channel_keys(channel)]
        pipe = self._client.pipeline(transaction=False)
        pipe.get(self._epoch_key)
        pipe.time()
        pipe.hmget(self._floors_key, streams)
        for stream in streams:
            pipe.xrange(stream, min=f"{since.seq + 1}-0")
        epoch, (seconds, micros), floors, *ranges = await pipe.execute()
        if epoch is None or epoch.decode("ascii") != since.epoch:
            return Recovery([], False, LOST)
        entries, gap = merge(
            ((_entries(raw), int(floor or 0)) for raw, floor in zip(ranges, floors, strict=True)),
            since.seq,
            seconds + micros / 1e6,
            self._age,
        )
        return Recovery([decode(entry.data) for entry in entries], not gap, gap)


def _entries(raw: list[tuple[bytes, dict[bytes, bytes]]]) -> list[Entry]:
    """Stream entries as XRANGE returns them; IDs are ``<seq>-0``, ``t`` is in ms."""
    return [
        Entry(int(ident.split(b"-")[0]), int(fields[b"t"]) / 1000, fields[b"d"])
        for ident, fields in raw
    ]
