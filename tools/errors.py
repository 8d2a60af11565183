"""Errors the front ends turn into one clear line (exit code 2 for bad input)."""


class StorybotError(Exception):
    """Base class: the message is shown to the user as is, on one line."""


class BadInput(StorybotError):
    """The user's input cannot be used; nothing was written."""


class MediaError(StorybotError):
    """A media tool (FFmpeg, libespeak-ng) failed; the message carries the tool's own words."""
