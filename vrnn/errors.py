"""User-facing errors.

Anything a user can cause (a wrong path, a bad option, malformed data) raises
:class:`VrnnError` with a one-line message that names the file or field and the fix.
The CLI prints these without a traceback and exits non-zero; anything else is a bug.
"""


class VrnnError(Exception):
    """A mistake in the user's input, reported as one line."""


class TrainingDiverged(VrnnError):
    """The loss became non-finite; the last good checkpoint was kept."""
