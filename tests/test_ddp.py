"""Fits on 2 CPU processes (DDP over gloo): files once, metrics reduced across processes."""

import csv
import json
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import DATA_DIR, ROOT


def run(command: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=timeout, env=environment)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_epoch_metrics_are_averaged_over_processes(tmp_path):
    output = tmp_path / "logged.json"
    run([sys.executable, str(ROOT / "tests" / "ddp_metric_probe.py"), str(output)])
    logged = json.loads(output.read_text())
    assert logged["probe/loss"] == pytest.approx(1.0)
    assert logged["probe/accuracy"] == pytest.approx(0.5)


def test_autoencoder_job_on_two_processes(tmp_path):
    runs = tmp_path / "runs"
    run([
        sys.executable, str(ROOT / "cli.py"), "fit", "--config", str(ROOT / "configs" / "mnist.yaml"),
        "--data.init_args.data_dir", str(DATA_DIR),
        "--trainer.logger.init_args.save_dir", str(runs),
        "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
        "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false",
        "--data.init_args.train_subset", "2000", "--data.init_args.test_subset", "500",
        "--trainer.callbacks.init_args.n_init", "2",
    ])
    # One run folder, one of each file: only rank zero writes.
    assert [path.name for path in (runs / "mnist").iterdir()] == ["version_0"]
    folder = runs / "mnist" / "version_0"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["clustering"]["n_points"] == 2500
    assert len(list(folder.glob("cluster_label_counts_k*.png"))) == 1
    assert len(list(folder.glob("pseudo_labels_k*.csv"))) == 1
    checkpoints = list((folder / "checkpoints").glob("*.ckpt"))
    assert len(checkpoints) == 1

    # The logged validation MSE must be the MSE over the whole validation split, not one
    # process's half of it and not a sum over processes.
    with open(folder / "metrics_per_epoch.csv") as handle:
        logged = float(next(csv.DictReader(handle))["val/mse"])
    from datamodules import MNISTDataModule
    from lightning_modules import AutoencoderModule

    datamodule = MNISTDataModule(data_dir=str(DATA_DIR), train_subset=2000, test_subset=500)
    datamodule.setup("fit")
    model = AutoencoderModule.load_from_checkpoint(checkpoints[0], map_location="cpu").eval()
    with torch.no_grad():
        images = datamodule.images["val"]
        expected = float(F.mse_loss(model(images), images))
    assert logged == pytest.approx(expected, rel=1e-4)
