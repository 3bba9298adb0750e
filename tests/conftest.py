import gzip
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATA_DIR = ROOT / "data"


@pytest.fixture(autouse=True)
def plain_argv(monkeypatch):
    # Tests call cli.main(args) in-process. LightningCLI warns when sys.argv also contains
    # arguments, and pytest's own arguments are not meant for it.
    monkeypatch.setattr(sys, "argv", ["cli.py"])


@pytest.fixture
def mnist_copy(tmp_path) -> Path:
    """A writable copy of the committed MNIST .gz files, laid out as torchvision expects."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for source in (DATA_DIR / "MNIST" / "raw").glob("*.gz"):
        shutil.copy(source, raw / source.name)
    return tmp_path


def rewrite_gzip(path: Path, content: bytes) -> None:
    with gzip.open(path, "wb") as handle:
        handle.write(content)
