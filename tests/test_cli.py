import csv
import json
import subprocess
import sys

import pytest

import cli
from tests.conftest import DATA_DIR, ROOT

CONFIG = str(ROOT / "configs" / "mnist.yaml")


def run_cli(tmp_path, *extra, monkeypatch=None):
    arguments = [
        "fit",
        "--config", CONFIG,
        "--data.init_args.data_dir", str(DATA_DIR),
        "--trainer.logger.init_args.save_dir", str(tmp_path / "runs"),
        "--trainer.enable_progress_bar", "false",
        *extra,
    ]
    return cli.main(arguments)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("e2e")
    import _pytest.monkeypatch

    patch = _pytest.monkeypatch.MonkeyPatch()
    patch.setattr(sys, "argv", ["cli.py"])
    try:
        status = run_cli(
            tmp_path,
            "--trainer.max_epochs", "2",
            "--data.init_args.train_subset", "2000",
            "--data.init_args.test_subset", "500",
            "--trainer.callbacks.init_args.n_init", "2",
        )
    finally:
        patch.undo()
    assert status == 0
    return tmp_path / "runs" / "mnist" / "version_0"


def test_run_writes_every_artefact(finished_run):
    metrics = json.loads((finished_run / "metrics.json").read_text())
    chosen = metrics["clustering"]["best_k"]
    for name in [
        "config.yaml", "model_summary.txt", "data_summary.json", "sample_images.png",
        "curve_mse.png", "curve_mae.png", "metrics_per_epoch.csv", "reconstructions_test.png",
        "silhouette_vs_k.png", f"cluster_label_counts_k{chosen}.png", f"cluster_to_label_k{chosen}.csv",
        f"pseudo_labels_k{chosen}.csv",
    ]:
        path = finished_run / name
        assert path.is_file(), name
        if name.endswith(".png"):
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
            assert path.stat().st_size > 5_000, name
    assert len(list((finished_run / "checkpoints").glob("best-*.ckpt"))) == 1
    assert not list(finished_run.glob("*.partial"))


def test_run_metrics_are_sane(finished_run):
    metrics = json.loads((finished_run / "metrics.json").read_text())
    test = metrics["test"]
    assert 0.0 < test["mse"] < 2.0
    # Mean absolute error can never exceed the root of the mean squared error.
    assert 0.0 < test["mae"] <= test["mse"] ** 0.5
    clustering = metrics["clustering"]
    assert clustering["n_points"] == 2500
    assert clustering["points_per_split"] == {"test": 500, "train": 1500, "val": 500}
    scores = {int(k): v for k, v in clustering["silhouette"]["by_k"].items()}
    assert sorted(scores) == list(range(5, 16))
    assert all(-1.0 <= value <= 1.0 for value in scores.values())
    assert clustering["best_k"] == max(scores, key=scores.get)
    assert clustering["silhouette"]["exact_on_all_points"] is True
    assert 0.1 <= clustering["purity_at_best_k"] <= 1.0
    at_ten = clustering["at_k_10"]
    assert 0.1 <= at_ten["acc_hungarian"] <= 1.0
    assert 0.0 <= at_ten["nmi"] <= 1.0
    assert -1.0 <= at_ten["ari"] <= 1.0
    assert metrics["wall_time_s"]["fit_s"] > 0


def test_run_records_each_epoch(finished_run):
    with open(finished_run / "metrics_per_epoch.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["epoch"] for row in rows] == ["1", "2"]
    for row in rows:
        for key in ("train/mse", "val/mse", "train/mae", "val/mae"):
            assert 0.0 < float(row[key]) < 2.0


def test_pseudo_labels_follow_cluster_table(finished_run):
    metrics = json.loads((finished_run / "metrics.json").read_text())
    chosen = metrics["clustering"]["best_k"]
    table = {row["cluster"]: row for row in metrics["clustering"]["cluster_to_label_at_best_k"]}
    with open(finished_run / f"pseudo_labels_k{chosen}.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2500
    assert set(rows[0]) == {"index", "split", "cluster", "pseudo_label", "true_label"}
    for row in rows:
        assert int(row["pseudo_label"]) == table[int(row["cluster"])]["dominant_label"]
    test_indices = [int(row["index"]) for row in rows if row["split"] == "test"]
    assert len(test_indices) == 500
    assert max(test_indices) < 10_000
    sizes = {cluster: sum(1 for row in rows if int(row["cluster"]) == cluster) for cluster in table}
    assert sizes == {cluster: row["size"] for cluster, row in table.items()}


def test_second_run_gets_new_folder(tmp_path):
    extra = ["--trainer.max_epochs", "1", "--data.init_args.train_subset", "400",
             "--data.init_args.test_subset", "100", "--test_after_fit", "false"]
    assert run_cli(tmp_path, *extra) == 0
    first = tmp_path / "runs" / "mnist" / "version_0"
    summary = (first / "model_summary.txt").stat().st_mtime_ns
    assert run_cli(tmp_path, *extra) == 0
    assert (tmp_path / "runs" / "mnist" / "version_1" / "model_summary.txt").is_file()
    assert (first / "model_summary.txt").stat().st_mtime_ns == summary


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--model.init_args.latent_dim", "0"], "latent_dim must be between 1 and 784"),
        (["--model.init_args.latent_dim", "900"], "latent_dim must be between 1 and 784"),
        (["--data.init_args.batch_size", "0"], "batch_size must be a positive integer"),
        (["--trainer.callbacks.init_args.k_min", "1"], "k_min must be at least 2"),
        (
            ["--data.init_args.train_subset", "40", "--data.init_args.test_subset", "20",
             "--trainer.callbacks.init_args.k_max", "60"],
            r"k_max \(60\) must be smaller than the number of samples clustered \(60\)",
        ),
        (
            ["--data.init_args.train_subset", "20"],
            "a stratified split needs at least 10 images",
        ),
    ],
)
def test_invalid_config_is_reported_before_training(tmp_path, capsys, extra, message):
    assert run_cli(tmp_path, *extra) == 2
    error = capsys.readouterr().err
    assert "error: " in error
    assert pytest.importorskip("re").search(message, error)
    assert "Traceback" not in error
    assert not list((tmp_path / "runs").rglob("*.ckpt"))


def test_missing_data_folder_is_reported(tmp_path, capsys):
    status = cli.main([
        "fit", "--config", CONFIG,
        "--data.init_args.data_dir", str(tmp_path / "no-data"),
        "--trainer.logger.init_args.save_dir", str(tmp_path / "runs"),
    ])
    assert status == 2
    error = capsys.readouterr().err
    assert str((tmp_path / "no-data" / "MNIST" / "raw").resolve()) in error
    assert "train-images-idx3-ubyte.gz" in error


def test_config_before_subcommand_is_rejected():
    result = subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "--config", CONFIG, "fit"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )
    assert result.returncode == 2
    assert "--config must come after the subcommand" in result.stderr
    assert "python cli.py fit --config" in result.stderr
