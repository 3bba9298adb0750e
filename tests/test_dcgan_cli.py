"""A tiny DCGAN run through cli.py: fit, automatic test, then `test --ckpt_path` again."""

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

import cli

CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "dcgan_both.yaml")


def tiny_args(tmp_path: Path) -> list[str]:
    return [
        "--config", CONFIG,
        "--trainer.logger.init_args.save_dir", str(tmp_path / "runs"),
        "--trainer.max_epochs", "2",
        "--data.init_args.classes", '["0", "1"]',
        "--data.init_args.max_images_per_class", "24",
        "--data.init_args.batch_size", "16",
        "--model.init_args.num_classes", "2",
        "--model.init_args.generator_width", "16",
        "--model.init_args.discriminator_width", "16",
        "--model.init_args.instance_noise_epochs", "2",
        "--model.init_args.sample_every_n_epochs", "1",
        "--model.init_args.test_images_per_class", "64",
        "--model.init_args.classifier_dir", str(tmp_path / "classifier"),
        "--model.init_args.classifier_epochs", "3",
    ]


def check_test_outputs(folder: Path) -> dict:
    for name in ("0", "1"):
        grid = Image.open(folder / f"test_grid_class_{name}.png")
        assert grid.size == (8 * 34 + 2, 8 * 34 + 2)  # 64 images of 32 px with 2 px padding
        images = sorted((folder / "generated" / name).glob("*.png"))
        assert [path.name for path in images[:2]] == ["0000.png", "0001.png"]
        assert len(images) == 64
        assert Image.open(images[0]).size == (32, 32)
    metrics = json.loads((folder / "gan_metrics.json").read_text())
    generated, floor = metrics["generated"], metrics["real_train"]
    assert generated["images"] == 128
    assert set(generated["classifier_accuracy_per_class"]) == {"0", "1"}
    for scores in (generated, floor):
        assert 0.0 <= scores["classifier_accuracy"] <= 1.0
        assert scores["fid"] >= 0.0  # also false for NaN
        assert scores["kid_std"] >= 0.0
    assert sum(generated["predicted_class_share"].values()) == pytest.approx(1.0)
    assert 0.0 <= metrics["classifier"]["val_accuracy"] <= 1.0
    assert set(metrics["diversity"]["per_class"]) == {"0", "1"}
    assert 0.0 <= metrics["test_discriminator"]["d_acc"] <= 1.0
    return metrics


def test_cli_fit_then_test(tmp_path):
    assert cli.main(["fit", *tiny_args(tmp_path)]) == 0
    run = tmp_path / "runs" / "dcgan_both" / "version_0"
    for name in ("curve_loss.png", "curve_accuracy.png", "samples_epoch_001.png", "samples_epoch_002.png"):
        assert (run / name).stat().st_size > 1000, name
    with open(run / "metrics_per_epoch.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["epoch"] for row in rows] == ["1", "2"]
    for row in rows:
        for key in ("train/d_acc", "val/d_acc_real", "val/d_acc_fake", "train/g_success"):
            assert 0.0 <= float(row[key]) <= 1.0, key
        assert float(row["train/d_loss"]) > 0
        assert float(row["val/g_loss"]) > 0
    # Instance noise falls from 0.15 over the two epochs: epoch means 0.15*(1-0.25) and 0.15*(1-0.75).
    sigmas = [float(row["train/sigma"]) for row in rows]
    assert sigmas[0] < 0.15
    assert sigmas[1] < sigmas[0]
    assert sigmas[1] > 0.0
    first = check_test_outputs(run)
    assert not first["classifier"]["loaded"]

    checkpoint = next((run / "checkpoints").glob("*.ckpt"))
    assert cli.main(["test", *tiny_args(tmp_path), "--ckpt_path", str(checkpoint)]) == 0
    second = check_test_outputs(tmp_path / "runs" / "dcgan_both" / "version_1")
    # The classifier is loaded from its checkpoint, and fixed noise makes the test repeatable.
    assert second["classifier"]["loaded"]
    assert second["generated"]["fid"] == pytest.approx(first["generated"]["fid"], rel=1e-4)


def test_cli_gradient_clipping_error(tmp_path, capsys):
    code = cli.main(["fit", *tiny_args(tmp_path), "--trainer.gradient_clip_val", "1.0"])
    assert code == 2
    assert "error: trainer.gradient_clip_val=1.0 is not supported by DCGANModule" in capsys.readouterr().err


def test_cli_missing_data_folder(tmp_path, capsys):
    code = cli.main(["fit", *tiny_args(tmp_path), "--data.init_args.data_dir", str(tmp_path / "absent")])
    assert code == 2
    assert f"error: image folder {tmp_path / 'absent'} does not exist" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("config", "classes", "size"),
    [("dcgan_gpu.yaml", 5, 64), ("dcgan_all_classes.yaml", 10, 32)],
)
def test_cli_other_configs_train(tmp_path, config, classes, size):
    # The GPU config runs on the CPU here: only its 64x64 networks and settings are checked.
    path = str(Path(CONFIG).with_name(config))
    args = [
        "fit", "--config", path,
        "--trainer.accelerator", "cpu",
        "--trainer.logger.init_args.save_dir", str(tmp_path / "runs"),
        "--trainer.max_epochs", "1",
        "--test_after_fit", "false",
        "--data.init_args.max_images_per_class", "8",
        "--data.init_args.batch_size", "16",
        "--model.init_args.generator_width", "8",
        "--model.init_args.discriminator_width", "8",
    ]
    assert cli.main(args) == 0
    run = next((tmp_path / "runs").glob("*/version_0"))
    summary = json.loads((run / "data_summary.json").read_text())
    assert len(summary["classes"]) == classes
    assert summary["shapes"]["train"][1:] == [3, size, size]
    grid = Image.open(run / "samples_epoch_001.png")
    assert grid.size == (8 * (size + 2) + 2, classes * (size + 2) + 2)
