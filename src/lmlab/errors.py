"""The errors lmlab raises for people.

Every failure a user can cause (a missing file, an empty corpus, invalid UTF-8,
a malformed ARPA file, an unknown config key, a truncated checkpoint, no network
for a fetch) is an :class:`LmlabError`. Its message is one line that says what
went wrong and where; the CLI prints it as ``lmlab: error: <message>`` and exits
non-zero, with the traceback only under ``--debug``.
"""

from __future__ import annotations


class LmlabError(Exception):
    """Base class: a problem the user can fix. ``str(err)`` is the one-line message."""

    exit_code = 2


class DataError(LmlabError):
    """A corpus, text file or token stream is missing, empty or unreadable."""


class ConfigError(LmlabError):
    """A config file or override is invalid: unknown key, wrong type, bad value."""


class CheckpointError(LmlabError):
    """A saved model or training checkpoint is missing, truncated or inconsistent."""


class FormatError(LmlabError):
    """A file in an interchange format (ARPA, word2vec vectors, tokenizer.json) is malformed."""


class FetchError(LmlabError):
    """A built-in corpus could not be fetched or failed its checksum."""


class UsageError(LmlabError):
    """The arguments to a command or function do not make sense together."""


class DivergenceError(LmlabError):
    """Training produced NaN/inf or an exploding loss; the run stopped rather than save garbage."""


def closest(name: str, choices) -> str:
    """A ' (did you mean X?)' suffix naming the closest of ``choices``, or ''."""
    import difflib

    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean {match[0]!r}?)" if match else ""
