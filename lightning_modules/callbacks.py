"""Callbacks shared by the jobs: epoch metric history and its curves, written by rank zero."""

import math
from pathlib import Path

import lightning as L
import torch

from analysis.figures import plot_curves
from analysis.io import write_csv
from lightning_modules.run_folder import run_folder


class MetricCurves(L.Callback):
    """Record epoch-level metrics and draw them as PNG curves when fitting ends.

    Args:
        groups: figure name -> (y-axis label, metric keys drawn on the same axes). Each group
            becomes `curve_<name>.png` in the run folder; all recorded values go to
            `metrics_per_epoch.csv`.
    """

    def __init__(self, groups: dict[str, tuple[str, list[str]]]) -> None:
        self.groups = groups
        self.keys = sorted({key for _, keys in groups.values() for key in keys})
        self.history: list[dict] = []

    def _record(self, trainer: "L.Trainer") -> None:
        if trainer.sanity_checking:
            return
        values = {}
        for key in self.keys:
            value = trainer.callback_metrics.get(key)
            if value is not None:
                values[key] = float(value.item() if isinstance(value, torch.Tensor) else value)
        if not values:
            return
        epoch = trainer.current_epoch + 1
        if self.history and self.history[-1]["epoch"] == epoch:
            self.history[-1].update(values)
        else:
            self.history.append({"epoch": epoch, **values})

    def on_validation_epoch_end(self, trainer: "L.Trainer", pl_module: "L.LightningModule") -> None:
        self._record(trainer)

    def on_train_epoch_end(self, trainer: "L.Trainer", pl_module: "L.LightningModule") -> None:
        self._record(trainer)

    def on_fit_end(self, trainer: "L.Trainer", pl_module: "L.LightningModule") -> None:
        if not trainer.is_global_zero or not self.history:
            return
        folder = run_folder(trainer)
        rows = [{key: row.get(key, math.nan) for key in ["epoch", *self.keys]} for row in self.history]
        write_csv(rows, folder / "metrics_per_epoch.csv")
        for name, (ylabel, keys) in self.groups.items():
            plot_curves(self.history, keys, f"{ylabel} per epoch", ylabel, Path(folder) / f"curve_{name}.png")
