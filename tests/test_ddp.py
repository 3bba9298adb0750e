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


def test_dcgan_job_on_two_processes(tmp_path):
    runs = tmp_path / "runs"
    run([
        sys.executable, str(ROOT / "cli.py"), "fit",
        "--config", str(ROOT / "configs" / "dcgan_instance_noise.yaml"),
        "--config", str(ROOT / "configs" / "trainer_cpu_ddp.yaml"),
        "--data.init_args.data_dir", str(DATA_DIR / "sign-language-digits"),
        "--trainer.logger.init_args.save_dir", str(runs),
        "--trainer.max_epochs", "2",
        "--data.init_args.max_images_per_class", "60",
        "--model.init_args.instance_noise_epochs", "4",
        "--model.init_args.test_images_per_class", "64",
        "--model.init_args.classifier_dir", str(tmp_path / "classifier"),
        "--model.init_args.classifier_epochs", "1",
    ])
    assert [path.name for path in (runs / "dcgan_instance_noise").iterdir()] == ["version_0"]
    folder = runs / "dcgan_instance_noise" / "version_0"
    for name in ("gan_metrics.json", "curve_loss.png", "curve_accuracy.png", "metrics_per_epoch.csv"):
        assert (folder / name).is_file(), name
    assert len(list((folder / "checkpoints").glob("*.ckpt"))) == 1

    # 300 images, 85 % for training, split over 2 processes: 2 full batches of 64 per process.
    # sigma falls linearly from 0.15 to 0 over 4 epochs, so each epoch's mean over its batches
    # (at progress epoch + 0 and epoch + 0.5) is known exactly, on both processes alike.
    from lightning_modules.dcgan import instance_noise_sigma

    with open(folder / "metrics_per_epoch.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["epoch"] for row in rows] == ["1", "2"]
    for epoch, row in enumerate(rows):
        expected = (instance_noise_sigma(0.15, 4, epoch) + instance_noise_sigma(0.15, 4, epoch + 0.5)) / 2
        assert float(row["train/sigma"]) == pytest.approx(expected, rel=1e-5)
        for key in ("train/d_acc", "train/d_acc_real", "train/d_acc_fake", "train/g_success", "val/d_acc"):
            assert 0.0 <= float(row[key]) <= 1.0, key
        # Overall accuracy is the mean of the real and fake accuracies (equal counts of each).
        overall = (float(row["train/d_acc_real"]) + float(row["train/d_acc_fake"])) / 2
        assert float(row["train/d_acc"]) == pytest.approx(overall, abs=1e-5)
