"""Atomic writes, so an interrupted run never leaves a file that looks complete."""

import csv
import json
import os
from pathlib import Path


def write_json(data: dict, path: Path) -> Path:
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
    os.replace(partial, path)
    return path


def write_csv(rows: list[dict], path: Path) -> Path:
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(partial, path)
    return path


def write_text(text: str, path: Path) -> Path:
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)
    return path
