"""Errors that the command line shows as a one-line message instead of a traceback."""


class DataError(RuntimeError):
    """A data folder or file is missing, corrupt or unreadable."""


class ConfigError(ValueError):
    """A configuration value is invalid."""
