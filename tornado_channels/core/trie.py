"""The subscriber trie: who is on a channel, and who is below a prefix (pure).

Channels are keyed by their ``/``-separated segments, so "every subscriber
strictly below ``users``" is one subtree walk instead of a scan of every
channel.  An index by full name keeps the common case, exact-channel lookup,
a single dict access.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

S = TypeVar("S", bound=Hashable)


class _Node(Generic[S]):
    __slots__ = ("children", "parent", "segment", "subscribers")

    def __init__(self, parent: _Node[S] | None, segment: str) -> None:
        self.parent = parent
        self.segment = segment
        self.children: dict[str, _Node[S]] = {}
        # A dict, not a set: delivery order follows subscription order.
        self.subscribers: dict[S, None] = {}


class SubscriberTrie(Generic[S]):
    """Subscribers keyed by channel name, with subtree queries."""

    __slots__ = ("_index", "_root", "_size")

    def __init__(self) -> None:
        self._root: _Node[S] = _Node(None, "")
        self._index: dict[str, _Node[S]] = {}
        self._size = 0

    def __len__(self) -> int:
        """Number of (channel, subscriber) pairs."""
        return self._size

    def add(self, channel: str, subscriber: S) -> bool:
        """Subscribe ``subscriber`` to ``channel``; False if it already was."""
        node = self._index.get(channel)
        if node is None:
            node = self._root
            for segment in channel.split("/"):
                child = node.children.get(segment)
                if child is None:
                    child = node.children[segment] = _Node(node, segment)
                node = child
            self._index[channel] = node
        if subscriber in node.subscribers:
            return False
        node.subscribers[subscriber] = None
        self._size += 1
        return True

    def discard(self, channel: str, subscriber: S) -> bool:
        """Unsubscribe ``subscriber`` from ``channel``; False if it was not on it."""
        node = self._index.get(channel)
        if node is None or subscriber not in node.subscribers:
            return False
        del node.subscribers[subscriber]
        self._size -= 1
        if not node.subscribers:
            del self._index[channel]
            # Prune the branch so an abandoned channel costs no memory.
            while node.parent is not None and not node.subscribers and not node.children:
                del node.parent.children[node.segment]
                node = node.parent
        return True

    def subscribers(self, channel: str) -> list[S]:
        """The subscribers of exactly ``channel``."""
        node = self._index.get(channel)
        return list(node.subscribers) if node is not None else []

    def count(self, channel: str) -> int:
        """How many subscribers ``channel`` has."""
        node = self._index.get(channel)
        return len(node.subscribers) if node is not None else 0

    def below(self, prefix: str, first: Callable[[str], bool] | None = None) -> list[S]:
        """Subscribers of every channel strictly below ``prefix`` ("" is the root).

        A subscriber on several matching channels appears once per channel,
        as it would receive one message per subscription.  ``first`` keeps,
        below the root, only the channels whose first segment it accepts.
        """
        node: _Node[S] | None = self._root
        if prefix:
            exact = self._index.get(prefix)
            node = exact if exact is not None else self._find(prefix)
        if node is None:
            return []
        found: list[S] = []
        children = node.children
        if first is not None and node is self._root:
            stack = [child for segment, child in children.items() if first(segment)]
        else:
            stack = list(children.values())
        while stack:
            current = stack.pop()
            found.extend(current.subscribers)
            stack.extend(current.children.values())
        return found

    def channels(self) -> Iterator[tuple[str, int]]:
        """Every channel with at least one subscriber, and its subscriber count."""
        for name, node in self._index.items():
            yield name, len(node.subscribers)

    def _find(self, prefix: str) -> _Node[S] | None:
        node = self._root
        for segment in prefix.split("/"):
            child = node.children.get(segment)
            if child is None:
                return None
            node = child
        return node
