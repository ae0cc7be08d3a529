"""Publishes made in one pass of the loop go to the broker as one call (no Redis needed)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from tornado_channels.brokers.base import (
    BrokerUnavailable,
    IdempotencyConflict,
    PublishError,
    PublishOutcomeUnknown,
)
from tornado_channels.brokers.coalescer import PublishCoalescer, Request
from tornado_channels.core.channels import Channel
from tornado_channels.core.idempotency import Idempotency
from tornado_channels.core.publication import Position, Publication, Receipt

from ..helpers import run


class Recorder:
    """A submit that records its calls and numbers what it is given (or refuses each request)."""

    def __init__(self, fail: type[PublishError] | None = None) -> None:
        self.calls: list[list[bytes]] = []
        self.fail = fail
        self.seq = 0

    async def __call__(self, requests: Sequence[Request]) -> list[Receipt | PublishError]:
        self.calls.append([p.payload for publications, _ in requests for p in publications])
        await asyncio.sleep(0)
        results: list[Receipt | PublishError] = []
        for publications, idempotency in requests:
            if self.fail is not None:
                results.append(self.fail("refused"))
            elif idempotency is not None and idempotency.key == "taken":
                results.append(IdempotencyConflict("taken"))
            else:
                results.append(
                    Receipt([Position("e", self.seq + 1 + i) for i in range(len(publications))])
                )
                self.seq += len(publications)
        return results


def message(text: str) -> Publication:
    return Publication(Channel("a"), text.encode())


def test_publishes_in_one_pass_share_one_call_in_order() -> None:
    """Twenty concurrent publishes make one call, and each gets its own position, in order."""

    async def scenario() -> None:
        recorder = Recorder()
        coalescer = PublishCoalescer(recorder)
        positions = await asyncio.gather(
            *(coalescer.publish(message(f"m{n}"), None) for n in range(20))
        )
        assert recorder.calls == [[f"m{n}".encode() for n in range(20)]]
        assert [r.positions[0].seq for r in positions] == list(range(1, 21))

    run(scenario())


def test_publishes_in_separate_passes_make_separate_calls() -> None:
    """A publish that waits for the previous one goes in a call of its own."""

    async def scenario() -> None:
        recorder = Recorder()
        coalescer = PublishCoalescer(recorder)
        await coalescer.publish(message("first"), None)
        await coalescer.publish(message("second"), None)
        assert recorder.calls == [[b"first"], [b"second"]]

    run(scenario())


def test_a_full_batch_is_split_at_its_limit() -> None:
    """Past max_batch, the rest goes in the next call, order kept."""

    async def scenario() -> None:
        recorder = Recorder()
        coalescer = PublishCoalescer(recorder, max_batch=3)
        await asyncio.gather(*(coalescer.publish(message(str(n)), None) for n in range(7)))
        assert [len(call) for call in recorder.calls] == [3, 3, 1]
        assert [payload for call in recorder.calls for payload in call] == [
            str(n).encode() for n in range(7)
        ]

    run(scenario())


@pytest.mark.parametrize("error", [BrokerUnavailable, PublishOutcomeUnknown])
def test_every_caller_of_a_refused_batch_gets_its_own_error(error: type[PublishError]) -> None:
    """The batch's outcome is each caller's: a fresh exception of the same type each."""

    async def scenario() -> None:
        coalescer = PublishCoalescer(Recorder(fail=error))
        results = await asyncio.gather(
            *(coalescer.publish(message(str(n)), None) for n in range(3)), return_exceptions=True
        )
        assert all(isinstance(result, error) for result in results)
        assert len({id(result) for result in results}) == 3

    run(scenario())


def test_stopping_abandons_what_is_in_flight() -> None:
    """stop() cancels the call in flight; its callers get BrokerUnavailable, none waits forever."""

    async def scenario() -> None:
        started = asyncio.Event()

        async def hangs(requests: Sequence[Request]) -> list[Receipt | PublishError]:
            started.set()
            await asyncio.sleep(3600)
            raise AssertionError("not reached")

        coalescer = PublishCoalescer(hangs)
        waiting = asyncio.ensure_future(coalescer.publish(message("x"), None))
        await started.wait()
        await coalescer.stop()
        with pytest.raises(BrokerUnavailable):
            await waiting

    run(scenario())


def test_one_refused_request_leaves_the_others_published() -> None:
    """A request whose idempotency key conflicts fails alone; the rest of its call succeeds."""

    async def scenario() -> None:
        coalescer = PublishCoalescer(Recorder())
        results = await asyncio.gather(
            coalescer.publish(message("a"), None),
            coalescer.publish(message("b"), Idempotency("taken", "f")),
            coalescer.publish(message("c"), Idempotency("free", "f")),
            return_exceptions=True,
        )
        assert isinstance(results[1], IdempotencyConflict)
        assert [r.positions[0].seq for r in (results[0], results[2])] == [1, 2]  # type: ignore[union-attr]

    run(scenario())
