"""Errors that stop a command, each naming the file and the key or column at fault."""


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file and the key."""


class LoadError(ValueError):
    """A problem that stops the load; the message names the source and the column."""
