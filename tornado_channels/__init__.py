"""tornado_channels: WebSocket channels on Tornado, relayed between processes by Redis.

Standalone: ``tornado-channels --port 5000 [--redis-url redis://...]``.
Inside a Tornado application::

    node = Node(RedisBroker("redis://127.0.0.1:6379/0"))   # or Node() for in-memory
    await node.start()
    app = tornado.web.Application(
        [(r"/", MyHome), *channel_routes(node, prefix="/live/", hooks=MyHooks())]
    )
"""

from __future__ import annotations

__version__ = "0.1.0"

from .brokers.base import Broker, BrokerUnavailable, PublishError, PublishOutcomeUnknown
from .brokers.memory import MemoryBroker
from .brokers.redis import RedisBroker
from .core.channels import Channel, InvalidChannel, Subtree, Target, parse_channel, parse_target
from .core.publication import Publication
from .hub import Hub, Subscriber
from .node import Node
from .web.app import make_app
from .web.hooks import ChannelHooks, Reject
from .web.routing import channel_routes

__all__ = [
    "Broker",
    "BrokerUnavailable",
    "Channel",
    "ChannelHooks",
    "Hub",
    "InvalidChannel",
    "MemoryBroker",
    "Node",
    "Publication",
    "PublishError",
    "PublishOutcomeUnknown",
    "RedisBroker",
    "Reject",
    "Subscriber",
    "Subtree",
    "Target",
    "__version__",
    "channel_routes",
    "make_app",
    "parse_channel",
    "parse_target",
]
