"""Figure helpers: headless rendering, atomic PNG writes and figures that are always closed."""

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # No display on servers and CI; must be chosen before pyplot is imported.
import matplotlib.pyplot as plt  # noqa: E402


def save_figure(figure: "plt.Figure", path: Path, dpi: int = 150) -> Path:
    """Write `figure` to `path` as PNG through a temporary file, then close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        figure.savefig(partial, dpi=dpi, bbox_inches="tight", format="png")
        os.replace(partial, path)
    finally:
        plt.close(figure)
        partial.unlink(missing_ok=True)
    return path


def plot_curves(history: list[dict], keys: list[str], title: str, ylabel: str, path: Path) -> Path:
    """Plot one line per metric key against the epoch, all on the same axes."""
    figure, axes = plt.subplots(figsize=(6, 4))
    for key in keys:
        epochs = [row["epoch"] for row in history if key in row]
        values = [row[key] for row in history if key in row]
        if values:
            axes.plot(epochs, values, marker="o", markersize=3, label=key)
    axes.set_xlabel("epoch")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    return save_figure(figure, path)
