"""The subscriber trie: who is on a channel, and who is below a prefix (pure).

Channels are keyed by their ``/``-separated segments, so "every subscriber
strictly below ``users``" is one subtree walk instead of a scan of every
channel.  An index by full name keeps the common case, exact-channel lookup,
a single dict access.

A node also holds *watchers*: subscribers of a whole subtree (``users/``),
who hear everything that reaches any channel below its prefix.  A publish
reaches the watchers on its way down from the root, once each.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

S = TypeVar("S", bound=Hashable)


class _Node(Generic[S]):
    __slots__ = ("children", "parent", "segment", "subscribers", "watchers")

    def __init__(self, parent: _Node[S] | None, segment: str) -> None:
        self.parent = parent
        self.segment = segment
        self.children: dict[str, _Node[S]] = {}
        # A dict, not a set: delivery order follows subscription order.
        self.subscribers: dict[S, None] = {}
        # Subscribers of everything strictly below this node's prefix.
        self.watchers: dict[S, None] = {}


class SubscriberTrie(Generic[S]):
    """Subscribers keyed by channel name, with subtree queries."""

    __slots__ = ("_index", "_root", "_size")

    def __init__(self) -> None:
        self._root: _Node[S] = _Node(None, "")
        self._index: dict[str, _Node[S]] = {}
        self._size = 0

    def __len__(self) -> int:
        """Number of (channel or prefix, subscriber) pairs."""
        return self._size

    def nodes(self) -> int:
        """Nodes below the root, live or not (for tests of the memory bound)."""
        count, stack = 0, list(self._root.children.values())
        while stack:
            node = stack.pop()
            count += 1
            stack.extend(node.children.values())
        return count

    def _make(self, name: str) -> _Node[S]:
        node = self._root
        if not name:
            return node
        for segment in name.split("/"):
            child = node.children.get(segment)
            if child is None:
                child = node.children[segment] = _Node(node, segment)
            node = child
        return node

    def _prune(self, node: _Node[S]) -> None:
        # Drop the branch so an abandoned channel costs no memory.
        while (
            node.parent is not None
            and not node.subscribers
            and not node.children
            and not node.watchers
        ):
            del node.parent.children[node.segment]
            node = node.parent

    def add(self, channel: str, subscriber: S) -> bool:
        """Subscribe ``subscriber`` to ``channel``; False if it already was."""
        node = self._index.get(channel)
        if node is None:
            node = self._index[channel] = self._make(channel)
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
            self._prune(node)
        return True

    def watch(self, prefix: str, subscriber: S) -> bool:
        """Subscribe ``subscriber`` to everything below ``prefix``; False if it already was."""
        node = self._make(prefix)
        if subscriber in node.watchers:
            return False
        node.watchers[subscriber] = None
        self._size += 1
        return True

    def unwatch(self, prefix: str, subscriber: S) -> bool:
        """Undo :meth:`watch`; False if ``subscriber`` was not watching ``prefix``."""
        node = self._find(prefix) if prefix else self._root
        if node is None or subscriber not in node.watchers:
            return False
        del node.watchers[subscriber]
        self._size -= 1
        self._prune(node)
        return True

    def watching(self, prefix: str) -> list[S]:
        """The watchers of exactly ``prefix``."""
        node = self._find(prefix) if prefix else self._root
        return list(node.watchers) if node is not None else []

    def watchers(
        self,
        name: str,
        subtree: bool,
        first: Callable[[str], bool] | None = None,
        root: bool = True,
    ) -> list[S]:
        """The watchers a publication to ``name`` (a subtree's prefix if ``subtree``) reaches.

        Those of every prefix above it (the root's included), and for a
        subtree also those of its own prefix and of every prefix below it:
        a publish to ``users/`` reaches the channels below ``users/2`` too.
        ``first`` keeps, below the root, only the prefixes whose first
        segment it accepts; ``root=False`` leaves out the root's own watchers.
        """
        node = self._root
        found = list(node.watchers) if root else []
        segments = name.split("/") if name else []
        for depth, segment in enumerate(segments):
            if depth == 0 and first is not None and not first(segment):
                return found
            child = node.children.get(segment)
            if child is None:
                return found
            node = child
            if depth < len(segments) - 1 or subtree:
                found.extend(node.watchers)
        if subtree:
            stack = list(node.children.values())
            if first is not None and node is self._root:
                stack = [child for key, child in node.children.items() if first(key)]
            while stack:
                current = stack.pop()
                found.extend(current.watchers)
                stack.extend(current.children.values())
        return found

    def all_watchers(self, first: Callable[[str], bool] | None = None) -> list[S]:
        """Every watcher (below the root, only where ``first`` accepts the first segment)."""
        found = list(self._root.watchers)
        stack = [c for key, c in self._root.children.items() if first is None or first(key)]
        while stack:
            current = stack.pop()
            found.extend(current.watchers)
            stack.extend(current.children.values())
        return found

    def watched(self) -> Iterator[tuple[str, int]]:
        """Every prefix with watchers, and how many it has."""
        stack: list[tuple[str, _Node[S]]] = [("", self._root)]
        while stack:
            prefix, node = stack.pop()
            if node.watchers:
                yield prefix, len(node.watchers)
            for segment, child in node.children.items():
                stack.append((f"{prefix}/{segment}" if prefix else segment, child))

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
