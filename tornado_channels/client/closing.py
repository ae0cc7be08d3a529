"""``with`` and ``async with`` for every client object: they close what they opened."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Closing:
    """A context manager that calls ``close()`` on the way out."""

    def close(self) -> None:
        """Release what the object holds (connections, threads)."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class AsyncClosing:
    """An async context manager that awaits ``aclose()`` on the way out."""

    async def aclose(self) -> None:
        """Release what the object holds (connections, tasks)."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
