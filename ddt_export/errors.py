"""The one exception type users see: a problem they can fix, said in one line with the fix."""


class DDTError(Exception):
    """Raised for bad input or unusable artifacts. The CLI prints `error: <message>` and exits 2."""
