"""The one exception type for bad input: raised before any work starts, printed as one line; and the
write probes that the checks of output paths share (``--save``, ``--storage``; a dry run's, which
creates nothing)."""
import os
import tempfile


class ConfigError(ValueError):
    """A trial or sweep was asked for something that cannot run. The message names the bad value
    and what is allowed, in one line, so a CLI can print it as is."""


def unwritable(folder: str) -> str | None:
    """Why this process cannot create a file in ``folder`` (made if missing), or None when it can."""
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as e:
        return str(e.strerror or e)
    return None


def unwritable_uncreated(folder: str) -> str | None:
    """Why ``folder`` could not be written, judged without creating it (a dry run leaves nothing on
    disk): the nearest existing ancestor must be a writable folder."""
    path = os.path.abspath(folder)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    if not os.path.isdir(path):
        return "Not a directory"
    return None if os.access(path, os.W_OK) else "Permission denied"
