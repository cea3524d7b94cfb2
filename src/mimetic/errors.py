"""The one exception type for errors a user can cause (bad path, bad shape, unknown env, NaN in data).

The CLI prints its message as one line and exits non-zero; anything else is a bug and keeps its traceback.
"""


class MimeticError(Exception):
    """A user-facing error. The message names what was wrong and where."""
