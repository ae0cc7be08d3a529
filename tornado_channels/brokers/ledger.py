"""The subscription ledger: which pub/sub keys a process wants, and what to tell Redis next (pure).

Local subscribers come and go in any order, faster than Redis answers.  A
SUBSCRIBE sent for a new subscriber and an UNSUBSCRIBE sent for an old one
must reach Redis in the order the process decided them, or the last one to
arrive wins and a live subscriber goes deaf.  So nothing sends a command
directly: every change marks its keys *dirty*, and one sender asks
:meth:`SubscriptionLedger.plan` for the commands that bring Redis from what
it was last told to what is wanted *now*, and sends them in that order.  The
last intent wins:

- an unsubscribe not yet sent is cancelled by a subscribe that comes before
  the next plan (no command at all);
- a subscribe that comes while an UNSUBSCRIBE is on its way is planned after
  it, on the same connection, so Redis applies them in that order.

Acknowledgements come back in the order the commands were sent.  The ledger
expects them in that order (:meth:`acknowledge`), so each subscriber waits
for the acknowledgement of the SUBSCRIBE that serves it, never an earlier one.
Every reply carries the connection's subscription count, which is also how a
self-check (:meth:`plan_check`) finds keys Redis has dropped: re-subscribing
to a key it still holds leaves the count unchanged; one it had lost raises it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

SUBSCRIBE = "subscribe"
UNSUBSCRIBE = "unsubscribe"

# Why a reply is owed: a command the process asked for, a self-check's
# re-subscription, or the self-check's opening baseline.
_ASKED, _CHECK, _BASELINE = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Reply:
    """What Redis answered to one key of a (UN)SUBSCRIBE, as the ledger read it.

    ``repaired`` is True for a self-check SUBSCRIBE that Redis did not hold
    (it does now); ``stray`` for a self-check UNSUBSCRIBE of a key it held
    without being asked to; ``unexpected`` when the reply matched nothing sent.
    """

    key: bytes
    repaired: bool = False
    stray: bool = False
    unexpected: bool = False


class SubscriptionLedger:
    """Interest per key, what Redis was last told, and the replies still owed."""

    __slots__ = ("_asked", "_dirty", "_expected", "_interest", "_pending", "count")

    def __init__(self) -> None:
        # Key -> local subscriptions that need it.
        self._interest: dict[bytes, int] = {}
        # Keys whose last command sent was SUBSCRIBE.
        self._asked: set[bytes] = set()
        # Keys changed since the last plan, in the order they changed.
        self._dirty: dict[bytes, None] = {}
        # Replies owed, in the order the commands were sent: (kind, key, why).
        self._expected: deque[tuple[str, bytes, int]] = deque()
        # Key -> SUBSCRIBE replies still owed for it (not counting checks).
        self._pending: dict[bytes, int] = {}
        #: The connection's subscription count, as Redis last reported it.
        self.count = 0

    # What the process wants

    def acquire(self, keys: Iterable[bytes]) -> None:
        """One more local subscription needs each of ``keys``."""
        for key in keys:
            count = self._interest.get(key, 0)
            self._interest[key] = count + 1
            if count == 0:
                self._dirty[key] = None

    def release(self, keys: Iterable[bytes]) -> None:
        """One local subscription no longer needs each of ``keys``."""
        for key in keys:
            count = self._interest.get(key, 0) - 1
            if count > 0:
                self._interest[key] = count
            elif count == 0:
                del self._interest[key]
                self._dirty[key] = None

    def wanted(self, key: bytes) -> bool:
        """Whether some local subscription needs ``key``."""
        return key in self._interest

    def keys(self) -> list[bytes]:
        """Every key some local subscription needs."""
        return list(self._interest)

    @property
    def dirty(self) -> bool:
        """Whether :meth:`plan` has anything to send."""
        return bool(self._dirty)

    def confirmed(self, key: bytes) -> bool:
        """Whether Redis has acknowledged a SUBSCRIBE of ``key`` still in effect."""
        return key in self._asked and not self._pending.get(key)

    # What to send

    def plan(self) -> tuple[list[bytes], list[bytes]]:
        """The keys to SUBSCRIBE and to UNSUBSCRIBE now; the caller sends them in that order.

        Each key appears at most once, in the command that makes Redis match
        what is wanted; keys already matching are left out.
        """
        subscribe: list[bytes] = []
        unsubscribe: list[bytes] = []
        for key in self._dirty:
            wanted = key in self._interest
            if wanted and key not in self._asked:
                subscribe.append(key)
            elif not wanted and key in self._asked:
                unsubscribe.append(key)
        self._dirty.clear()
        self.sent(SUBSCRIBE, subscribe)
        self.sent(UNSUBSCRIBE, unsubscribe)
        return subscribe, unsubscribe

    def plan_check(self, baseline: bytes) -> list[bytes]:
        """Keys to SUBSCRIBE again to check that Redis still holds them (all confirmed ones).

        The caller first sends UNSUBSCRIBE ``baseline``, a key no connection
        holds: its reply is the connection's true count to compare against.
        """
        self._expected.append((UNSUBSCRIBE, baseline, _BASELINE))
        keys = [key for key in self._asked if not self._pending.get(key)]
        self.sent(SUBSCRIBE, keys, check=True)
        return keys

    def plan_strays(self, held: Iterable[bytes]) -> list[bytes]:
        """Of keys some connection holds, those to UNSUBSCRIBE in case this one holds them."""
        keys = [key for key in held if key not in self._asked]
        self.sent(UNSUBSCRIBE, keys, check=True)
        return keys

    def sent(self, kind: str, keys: list[bytes], *, check: bool = False) -> None:
        """Record a command sent outside :meth:`plan` (the first SUBSCRIBE of a connection)."""
        for key in keys:
            self._expected.append((kind, key, _CHECK if check else _ASKED))
            if check:
                continue
            if kind == SUBSCRIBE:
                self._asked.add(key)
                self._pending[key] = self._pending.get(key, 0) + 1
            else:
                self._asked.discard(key)

    # What Redis answered

    def acknowledge(self, kind: str, key: bytes, count: int) -> Reply:
        """Take one reply; ``count`` is the connection's subscription count after it."""
        before, self.count = self.count, count
        if not self._expected or self._expected[0][:2] != (kind, key):
            return Reply(key, unexpected=True)
        _, _, why = self._expected.popleft()
        if why == _BASELINE:
            return Reply(key)
        if why == _CHECK:
            if kind == SUBSCRIBE:
                return Reply(key, repaired=count > before)
            return Reply(key, stray=count < before)
        if kind == SUBSCRIBE:
            remaining = self._pending.get(key, 0) - 1
            if remaining > 0:
                self._pending[key] = remaining
            else:
                self._pending.pop(key, None)
        return Reply(key)

    @property
    def settled(self) -> bool:
        """Whether every reply owed has arrived."""
        return not self._expected

    def held(self) -> int:
        """How many keys Redis should hold on this connection now (as asked)."""
        return len(self._asked)

    # The connection

    def reconnected(self, extra: Iterable[bytes] = ()) -> list[bytes]:
        """A new connection holds nothing: everything wanted is to be subscribed, in one command.

        Returns the keys of that first SUBSCRIBE (``extra`` first: keys the
        broker holds for itself), recorded as sent.
        """
        self._asked.clear()
        self._pending.clear()
        self._expected.clear()
        self._dirty.clear()
        self.count = 0
        first = [*extra, *self._interest]
        self.sent(SUBSCRIBE, first)
        return first
