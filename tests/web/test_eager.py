"""run_eagerly: a publish runs at once, and a task carries it on only once it has to wait."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from tornado_channels.server.cli import event_loop_factory
from tornado_channels.web.eager import run_eagerly

#: Both loops the server runs on (uvloop where it is installed, as in the test set-up).
LOOPS = [
    factory for factory in map(event_loop_factory, ("asyncio", "uvloop")) if factory is not None
]


def run(
    make_loop: Callable[[], asyncio.AbstractEventLoop], main: Coroutine[Any, Any, None]
) -> None:
    with asyncio.Runner(loop_factory=make_loop) as runner:
        runner.run(asyncio.wait_for(main, 5))


@pytest.mark.parametrize("make_loop", LOOPS)
def test_a_coroutine_that_never_waits_runs_to_its_end_without_a_task(
    make_loop: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    """Nothing that never waits is left for the loop: None comes back and the work is done."""
    done: list[str] = []

    async def publish() -> None:
        done.append("published")

    async def main() -> None:
        assert run_eagerly(publish(), asyncio.get_running_loop()) is None
        assert done == ["published"]

    run(make_loop, main())


@pytest.mark.parametrize("make_loop", LOOPS)
def test_a_coroutine_that_waits_is_carried_on_by_a_task_through_results_errors_and_yields(
    make_loop: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    """Its first step runs at once; then a task feeds it each result, error and bare yield."""
    seen: list[object] = []

    async def publish(first: asyncio.Future[int], second: asyncio.Future[int]) -> None:
        seen.append("started")
        seen.append(await first)
        await asyncio.sleep(0)
        try:
            await second
        except ValueError as exc:
            seen.append(str(exc))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        first, second = loop.create_future(), loop.create_future()
        task = run_eagerly(publish(first, second), loop)
        assert task is not None
        assert seen == ["started"]
        loop.call_later(0.01, first.set_result, 7)
        loop.call_later(0.02, second.set_exception, ValueError("refused"))
        await task
        assert seen == ["started", 7, "refused"]

    run(make_loop, main())


@pytest.mark.parametrize("make_loop", LOOPS)
def test_cancelling_the_task_cancels_the_coroutine_where_it_waits(
    make_loop: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    """A cancelled carrier raises CancelledError in the coroutine, as its own task would."""
    seen: list[str] = []

    async def publish(never: asyncio.Future[None]) -> None:
        try:
            await never
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    async def main() -> None:
        loop = asyncio.get_running_loop()
        never: asyncio.Future[None] = loop.create_future()
        task = run_eagerly(publish(never), loop)
        assert task is not None
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert seen == ["cancelled"]

    run(make_loop, main())
