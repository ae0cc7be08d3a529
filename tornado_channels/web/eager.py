"""A coroutine run at once, and carried on by a task only once it has to wait.

Python 3.12's eager task factory, for every loop the server runs on
(uvloop's, and 3.11's, among them).  publish_request.py runs each publish
so: one on the embedded broker never waits, and then costs no task at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


def run_eagerly(
    coroutine: Coroutine[Any, Any, None], loop: asyncio.AbstractEventLoop
) -> asyncio.Task[None] | None:
    """Run ``coroutine`` now up to its first wait; a task carries on from there.

    Returns None when it finished without waiting.  What Python 3.12's eager
    task factory does: a publish on the embedded broker never waits, and a
    task per POST (created, scheduled, run one pass of the loop later) was a
    tenth of its cost.
    """
    try:
        awaited = coroutine.send(None)
    except StopIteration:
        return None
    return loop.create_task(_carry_on(coroutine, awaited))


async def _carry_on(coroutine: Coroutine[Any, Any, None], awaited: Any) -> None:
    """Drive ``coroutine`` (suspended on ``awaited``) to its end, as its task would."""
    while True:
        try:
            if awaited is None:
                await asyncio.sleep(0)  # A bare yield: one pass of the loop.
            else:
                # Handed over as a task takes it (Task.__step): the flag the
                # coroutine's own await raised must be down for this await.
                awaited._asyncio_future_blocking = False
                await awaited
        except BaseException as exc:  # noqa: BLE001 - handed on to the coroutine, as a task does
            if awaited is None or not awaited.done():
                # This task was cancelled while the coroutine waited: tell it.
                try:
                    awaited = coroutine.throw(exc)
                except StopIteration:
                    return
                continue
            # Otherwise the future's own outcome, which the coroutine reads itself.
        try:
            awaited = coroutine.send(None)
        except StopIteration:
            return
