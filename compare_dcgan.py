"""Train several DCGAN configs with the same seeds and budget and compare their results.

    OMP_NUM_THREADS=1 python compare_dcgan.py            # the four CPU variants
    python compare_dcgan.py --max_epochs 3 --configs configs/dcgan_plain.yaml configs/dcgan_both.yaml

Each comparison gets a new folder `<output>/version_N/` (never reusing one) with the runs,
their logs, `comparison.csv`, `comparison.md`, `curves_side_by_side.png` and `summary.json`.
The evaluation classifier is trained once up front, so no run's time includes it.
"""

import argparse
import csv
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

from analysis.figures import plt, save_figure
from analysis.io import write_csv, write_json, write_text
from datamodules.errors import ConfigError

ROOT = Path(__file__).resolve().parent
DEFAULT_CONFIGS = [
    "configs/dcgan_plain.yaml",
    "configs/dcgan_label_smoothing.yaml",
    "configs/dcgan_instance_noise.yaml",
    "configs/dcgan_both.yaml",
]


def new_version_folder(output: Path) -> Path:
    """Create and return the next free `version_N` folder; an existing one is never reused."""
    output.mkdir(parents=True, exist_ok=True)
    number = 0
    while True:
        candidate = output / f"version_{number}"
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            number += 1


def load_config(path: str) -> dict:
    config_path = ROOT / path if not Path(path).is_absolute() else Path(path)
    if not config_path.is_file():
        raise ConfigError(f"config {path} does not exist")
    with open(config_path) as handle:
        return yaml.safe_load(handle)


# The settings the compared variants are meant to differ in; every other model setting must match.
VARIANT_SETTINGS = ("label_smoothing", "instance_noise", "instance_noise_epochs")


def check_same_budget(configs: dict[str, dict], max_epochs) -> None:
    """All runs must share the data, seeds, noise, other model settings and (unless overridden) the epoch budget."""
    def shared(config):
        model = config["model"]["init_args"]
        return {
            "seed_everything": config.get("seed_everything"),
            "model settings other than stabilization": {
                key: value for key, value in model.items() if key not in VARIANT_SETTINGS
            },
            "data": config["data"]["init_args"],
            "noise_seed": model.get("noise_seed"),
            "classifier": (model.get("classifier_dir"), model.get("classifier_epochs")),
            "max_epochs": max_epochs or config["trainer"].get("max_epochs"),
        }

    reference_name, reference = next(iter(configs.items()))
    for name, config in configs.items():
        for key, value in shared(config).items():
            if value != shared(reference)[key]:
                raise ConfigError(
                    f"{name} and {reference_name} differ in {key} ({value!r} vs {shared(reference)[key]!r}); "
                    f"a comparison needs the same data, seeds and budget (or pass --max_epochs)"
                )


def read_history(path: Path) -> list[dict]:
    with open(path) as handle:
        return [{key: float(value) for key, value in row.items()} for row in csv.DictReader(handle)]


def spread(history: list[dict], key: str, last: int) -> float:
    values = [row[key] for row in history[-last:] if key in row and not math.isnan(row[key])]
    return statistics.pstdev(values) if len(values) > 1 else math.nan


def run_variant(config_path: str, config: dict, folder: Path, extra: list[str]) -> dict:
    name = config["trainer"]["logger"]["init_args"]["name"]
    runs = folder / "runs"
    command = [sys.executable, str(ROOT / "cli.py"), "fit", "--config", config_path,
               "--trainer.logger.init_args.save_dir", str(runs), *extra]
    environment = dict(os.environ)
    # One intra-op thread: on a small shared CPU, more threads mostly wait on each other.
    environment.setdefault("OMP_NUM_THREADS", "1")
    log_path = folder / "logs" / f"{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    print(f"[{time.strftime('%H:%M:%S')}] {name}: {' '.join(command)}", flush=True)
    start = time.monotonic()
    with open(log_path, "w") as log:
        result = subprocess.run(command, cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT)
    seconds = time.monotonic() - start
    versions = sorted((runs / name).glob("version_*"), key=lambda path: int(path.name.split("_")[1]))
    run_dir = versions[-1] if versions else None
    metrics_path = run_dir / "gan_metrics.json" if run_dir else None
    ok = result.returncode == 0 and metrics_path is not None and metrics_path.exists()
    print(f"[{time.strftime('%H:%M:%S')}] {name}: {'done' if ok else 'FAILED'} in {seconds / 60:.1f} min "
          f"(exit {result.returncode}, log {log_path})", flush=True)
    return {"name": name, "config": config_path, "seconds": seconds, "ok": ok, "run_dir": run_dir,
            "returncode": result.returncode, "log": str(log_path)}


def table_rows(results: list[dict], class_names: list[str], last: int) -> list[dict]:
    rows = []
    floor = None
    for result in results:
        row = {"variant": result["name"], "minutes": round(result["seconds"] / 60, 2)}
        if not result["ok"]:
            rows.append({**row, "status": f"failed (exit {result['returncode']}, see {result['log']})"})
            continue
        metrics = json.loads((result["run_dir"] / "gan_metrics.json").read_text())
        history = read_history(result["run_dir"] / "metrics_per_epoch.csv")
        generated = metrics["generated"]
        row.update({
            "status": "ok" if not metrics["diversity"]["warnings"] else "diversity warning",
            "epochs": int(history[-1]["epoch"]),
            "fid": round(generated["fid"], 2),
            "kid": round(generated["kid_mean"], 4),
            "kid_std": round(generated["kid_std"], 4),
            "accuracy": round(generated["classifier_accuracy"], 3),
        })
        for name in class_names:
            row[f"accuracy_{name}"] = round(generated["classifier_accuracy_per_class"][name], 3)
        for key in ("train/d_loss", "train/g_loss"):
            row[f"std_{key.split('/')[1]}_last{last}"] = round(spread(history, key, last), 4)
        rows.append(row)
        floor = floor or metrics["real_train"]
    if floor is not None:
        row = {"variant": "real train images (floor)", "minutes": "", "status": "reference", "epochs": "",
               "fid": round(floor["fid"], 2), "kid": round(floor["kid_mean"], 4),
               "kid_std": round(floor["kid_std"], 4), "accuracy": round(floor["classifier_accuracy"], 3)}
        for name in class_names:
            row[f"accuracy_{name}"] = round(floor["classifier_accuracy_per_class"][name], 3)
        rows.append(row)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    return [{column: row.get(column, "") for column in columns} for row in rows]


def markdown_table(rows: list[dict]) -> str:
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row[column]) for column in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def plot_side_by_side(results: list[dict], path: Path) -> None:
    done = [result for result in results if result["ok"]]
    if not done:
        return
    panels = [
        ("BCE loss", ["train/d_loss", "val/d_loss", "train/g_loss", "val/g_loss"]),
        ("accuracy", ["train/d_acc", "val/d_acc", "train/g_success", "val/g_success"]),
    ]
    figure, axes = plt.subplots(2, len(done), figsize=(3.6 * len(done), 6), sharey="row", squeeze=False)
    for column, result in enumerate(done):
        history = read_history(result["run_dir"] / "metrics_per_epoch.csv")
        for row, (ylabel, keys) in enumerate(panels):
            ax = axes[row][column]
            for key in keys:
                ax.plot([item["epoch"] for item in history], [item.get(key, math.nan) for item in history],
                        label=key, linewidth=1, linestyle="-" if key.startswith("train") else "--")
            ax.grid(alpha=0.3)
            ax.set_xlabel("epoch")
            if column == 0:
                ax.set_ylabel(ylabel)
            if row == 0:
                ax.set_title(result["name"], fontsize=10)
        if column == 0:
            for row in range(2):
                axes[row][0].legend(fontsize=7)
    figure.suptitle("DCGAN variants: train (solid) and validation (dashed), same seeds and budget", fontsize=11)
    save_figure(figure, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS)
    parser.add_argument("--output", default="runs/dcgan_comparison")
    parser.add_argument("--max_epochs", type=int, default=None, help="override every config's trainer.max_epochs")
    parser.add_argument("--last_epochs", type=int, default=10, help="epochs behind the loss spread (std)")
    parser.add_argument("cli_args", nargs=argparse.REMAINDER,
                        help="after `--`: more `cli.py fit` arguments given to every run")
    args = parser.parse_args(argv)
    extra = [arg for arg in args.cli_args if arg != "--"]
    try:
        configs = {path: load_config(path) for path in args.configs}
        check_same_budget(configs, args.max_epochs)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.max_epochs is not None:
        extra = ["--trainer.max_epochs", str(args.max_epochs), *extra]
    folder = new_version_folder(ROOT / args.output)
    print(f"comparison folder: {folder}", flush=True)

    first = next(iter(configs.values()))
    model_args = first["model"]["init_args"]
    from analysis.gan_evaluation import ensure_classifier  # noqa: PLC0415  (imports torch)

    start = time.monotonic()
    classifier = ensure_classifier(
        first["data"]["init_args"], model_args["classifier_dir"], model_args["classifier_epochs"],
        model_args["noise_seed"],
    )
    classifier_seconds = time.monotonic() - start
    print(f"classifier: validation accuracy {classifier['val_accuracy']:.3f} "
          f"({'loaded' if classifier['loaded'] else 'trained'} in {classifier_seconds:.0f} s)", flush=True)

    results = [run_variant(path, config, folder, extra) for path, config in configs.items()]
    class_names = [str(name) for name in first["data"]["init_args"]["classes"] or []]
    if not class_names:
        class_names = classifier["classes"]
    rows = table_rows(results, class_names, args.last_epochs)
    write_csv(rows, folder / "comparison.csv")
    write_text(markdown_table(rows), folder / "comparison.md")
    plot_side_by_side(results, folder / "curves_side_by_side.png")
    write_json(
        {
            "machine": {"platform": platform.platform(), "processor": platform.processor(),
                        "cpu_count": os.cpu_count(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "1")},
            "classifier": classifier,
            "classifier_seconds": classifier_seconds,
            "runs": [{**result, "run_dir": str(result["run_dir"])} for result in results],
            "loss_spread_epochs": args.last_epochs,
        },
        folder / "summary.json",
    )
    print(markdown_table(rows), flush=True)
    return 0 if all(result["ok"] for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
