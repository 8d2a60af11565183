"""uvicorn's HTTP/1.1 protocol with a deadline for each request's head (issue 23 #11).

uvicorn times out only idle keep-alive connections: a client that opens a connection and sends its
request line and headers a byte at a time, or never finishes them, holds that connection and its
file descriptor for as long as it likes, and a few thousand such clients leave none for real
requests. Here a connection must deliver a whole request head within `head_seconds` of opening,
and of each finished response; a request being answered (an event stream, a download) is never cut.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.h11_impl import H11Protocol

HEAD_SECONDS = 10.0  # a real client sends its head in one packet, milliseconds after connecting


class HeadDeadlineH11(H11Protocol):
    head_seconds = HEAD_SECONDS
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()  # the next request's head has the same deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        if not self.transport.is_closing():
            self._head_timer = self.loop.call_later(self.head_seconds, self._head_late)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if self.cycle is None or self.cycle.response_complete:  # no whole request head came in time
            self.transport.close()
