"""User-caused errors: each carries one line that says what went wrong and what to do.

This module imports nothing of ours, so every layer (features, models, training, serve)
may raise these; the command line turns them into one line on stderr and exit status 2.
"""


class P2PDetectError(Exception):
    """Base class for errors a user can cause and fix; never a bug."""


class BadCaptureError(P2PDetectError):
    """A capture file is missing, unreadable, empty, truncated or corrupt."""


class BadLabelsError(P2PDetectError):
    """A labels CSV is missing or malformed."""


class BadConfigError(P2PDetectError, ValueError):
    """A configuration parameter has an invalid value."""


class UsageError(BadConfigError):
    """The command line asks for something it cannot do (a missing argument, options that do
    not go together); the message is followed by where to look: '; see 'p2pdetect CMD --help''."""


class BadModelError(P2PDetectError):
    """A model bundle is missing, tampered, truncated or incompatible."""


class BadDatasetError(P2PDetectError):
    """A dataset (flow table, capture + labels, manifest) cannot be used as asked."""


class OutputError(P2PDetectError):
    """An output path cannot be written, or the output broke while writing."""
