"""One core for Playwright's sync and async APIs.

Every decision about a page (what to wait for, which capture to try next,
whether a refresh worked, what a submit did) is written once, as a generator
that *yields* the Playwright calls it needs and receives their results::

    def title_length(page) -> Steps[int]:
        title = yield Call(page, "title")
        return len(title)

A driver makes the calls: :func:`run_sync` with sync Playwright objects,
:func:`run_async` with async ones (their methods have the same names). An
exception raised by a call is thrown back into the generator, so the core's
``try``/``except`` works as if it had made the call itself.

    length = run_sync(title_length(page))           # sync_api Page
    length = await run_async(title_length(page))    # async_api Page
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Call:
    """A method call on a Playwright object; awaited when the object is async."""

    target: Any
    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    def run_sync(self) -> Any:
        return getattr(self.target, self.method)(*self.args, **self.kwargs)

    async def run_async(self) -> Any:
        result = getattr(self.target, self.method)(*self.args, **self.kwargs)
        return await result if inspect.isawaitable(result) else result


@dataclass(frozen=True)
class Sleep:
    """A pause (a backoff between retries): ``time.sleep`` or ``asyncio.sleep``."""

    seconds: float

    def run_sync(self) -> None:
        time.sleep(self.seconds)

    async def run_async(self) -> None:
        import asyncio

        await asyncio.sleep(self.seconds)


@dataclass(frozen=True)
class Offload:
    """CPU work (reading an image): run inline, or in a worker thread off the event loop."""

    function: Any
    args: tuple[Any, ...] = ()

    def run_sync(self) -> Any:
        return self.function(*self.args)

    async def run_async(self) -> Any:
        import asyncio

        return await asyncio.to_thread(self.function, *self.args)


Step = Call | Sleep | Offload
Steps = Generator[Step, Any, T]


def run_sync(steps: Steps[T]) -> T:
    """Drive a core generator with sync Playwright objects."""
    try:
        step = next(steps)
        while True:
            try:
                result = step.run_sync()
            except Exception as error:  # noqa: BLE001 - handed to the core, which decides
                step = steps.throw(error)
            else:
                step = steps.send(result)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    finally:
        steps.close()


async def run_async(steps: Steps[T]) -> T:
    """Drive a core generator with async Playwright objects."""
    try:
        step = next(steps)
        while True:
            try:
                result = await step.run_async()
            except Exception as error:  # noqa: BLE001 - handed to the core, which decides
                step = steps.throw(error)
            else:
                step = steps.send(result)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    finally:
        steps.close()
