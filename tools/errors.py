"""Errors the front ends turn into one clear line (exit code 2 for bad input)."""


class StorybotError(Exception):
    """Base class: the message is shown to the user as is, on one line."""


class BadInput(StorybotError):
    """The user's input cannot be used; nothing was written."""


class MediaError(StorybotError):
    """A media tool (FFmpeg, libespeak-ng) failed; the message carries the tool's own words."""


class ProviderGaveUp(StorybotError):
    """An online provider refused the request or kept failing through its own retries: running the
    stage again at once will not help, so the graph does not retry it; the job fails and can be resumed."""
