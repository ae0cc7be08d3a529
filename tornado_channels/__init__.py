"""tornado_channels: WebSocket channels on Tornado, relayed between processes by Redis.

Standalone: ``tornado-channels --port 5000 [--redis-url redis://...]``.
Inside a Tornado application (the README has a complete example)::

    node = Node()  # or Node(RedisBroker("redis://127.0.0.1:6379/0")) for many processes
    await node.start()
    app = tornado.web.Application(
        [(r"/", MyHome), *channel_routes(node, prefix="/live/", hooks=MyHooks())]
    )
    app.listen(8888, **http_server_options())  # the standalone server's timeouts and limits
"""

from __future__ import annotations

__version__ = "0.1.0"

from .brokers.base import Broker, BrokerUnavailable, PublishError, PublishOutcomeUnknown
from .brokers.memory import MemoryBroker
from .brokers.redis import RedisBroker
from .brokers.settings import BrokerSettings
from .core.channels import Channel, InvalidChannel, Subtree, Target, parse_channel, parse_target
from .core.grants import Claims, Grants
from .core.publication import Position, Publication, Recovery
from .hub import Hub, Subscriber
from .node import Node
from .web.app import make_app
from .web.hooks import Allow, ChannelHooks, Reject
from .web.limits import http_server_options
from .web.routing import channel_routes
from .web.tokens import claims_of

__all__ = [
    "Allow",
    "Broker",
    "BrokerSettings",
    "BrokerUnavailable",
    "Channel",
    "ChannelHooks",
    "Claims",
    "Grants",
    "Hub",
    "InvalidChannel",
    "MemoryBroker",
    "Node",
    "Position",
    "Publication",
    "PublishError",
    "PublishOutcomeUnknown",
    "Recovery",
    "RedisBroker",
    "Reject",
    "Subscriber",
    "Subtree",
    "Target",
    "__version__",
    "channel_routes",
    "claims_of",
    "http_server_options",
    "make_app",
    "parse_channel",
    "parse_target",
]
