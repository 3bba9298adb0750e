"""Errors that the command line shows as a one-line message instead of a traceback."""


class DataError(RuntimeError):
    """A data folder or file is missing, corrupt or unreadable."""


class ConfigError(ValueError):
    """A configuration value is invalid."""


def check_loader_settings(batch_size: int, val_fraction: float, num_workers: int) -> None:
    """Raise ConfigError for settings that every datamodule of the project shares."""
    if batch_size <= 0:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size}")
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    if num_workers < 0:
        raise ConfigError(f"num_workers must be 0 or more, got {num_workers}")
