"""Where a run writes its files: the logger's versioned folder, so no run overwrites another."""

from pathlib import Path

import lightning as L


def run_folder(trainer: "L.Trainer") -> Path:
    """Return the run's folder (created if needed); the same path on every process."""
    folder = Path(trainer.log_dir or trainer.default_root_dir)
    if trainer.is_global_zero:
        folder.mkdir(parents=True, exist_ok=True)
    return folder
