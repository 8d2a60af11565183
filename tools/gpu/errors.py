"""Errors a GPU stage reports: one line naming the family, the model and what went wrong."""

from __future__ import annotations

from tools.errors import StorybotError


class GpuError(StorybotError):
    """A GPU request failed. `kind` is the worker's error kind: oom, cancelled, load, bad_request,
    error, timeout, crashed or busy."""

    def __init__(self, message: str, kind: str = "error") -> None:
        super().__init__(message)
        self.kind = kind
