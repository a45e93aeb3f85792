"""The one exception type for bad input: raised before any work starts, printed as one line."""


class ConfigError(ValueError):
    """A trial or sweep was asked for something that cannot run. The message names the bad value
    and what is allowed, in one line, so a CLI can print it as is."""
