"""The run folder: the logger's versioned folder, so no run overwrites another."""

from pathlib import Path

import lightning as L


def run_folder(trainer: "L.Trainer") -> Path:
    """Return the run's folder, created by rank zero if needed.

    Reads the logger's folder directly instead of `trainer.log_dir`, because that property
    broadcasts across processes and would deadlock in code that only rank zero runs. Under
    DDP only rank zero's path is reliable, so only rank zero should write there.
    """
    logger = trainer.logger
    log_dir = getattr(logger, "log_dir", None) if logger is not None else None
    folder = Path(log_dir or trainer.default_root_dir)
    if trainer.is_global_zero:
        folder.mkdir(parents=True, exist_ok=True)
    return folder
