"""HandSignDataModule on small copies of the real Sign Language Digits photos."""

import shutil
import warnings
from pathlib import Path

import pytest
import torch

from datamodules.errors import ConfigError, DataError
from datamodules.hand_sign import HandSignDataModule

DATA = Path(__file__).resolve().parents[1] / "data" / "sign-language-digits"


def copy_classes(target: Path, classes=("0", "1", "2"), per_class: int = 10) -> Path:
    for name in classes:
        folder = target / name
        folder.mkdir(parents=True)
        for path in sorted((DATA / name).glob("*.JPG"))[:per_class]:
            shutil.copy(path, folder / path.name)
    return target


def test_real_classes_split_and_range():
    datamodule = HandSignDataModule(image_size=32)
    datamodule.setup("fit")
    assert datamodule.class_names == ("0", "1", "2", "3", "4")
    train, val = datamodule.images["train"], datamodule.images["val"]
    total = len(train) + len(val)
    assert total == sum(len(list((DATA / str(c)).glob("*.JPG"))) for c in range(5))
    assert train.shape[1:] == (3, 32, 32)
    assert val.shape[1:] == (3, 32, 32)
    assert abs(len(val) / total - 0.15) < 0.01
    # Pixels span the tanh range, not [0, 1] or [0, 255].
    assert train.min() >= -1.0
    assert train.max() <= 1.0
    assert train.min() < -0.9
    assert train.max() > 0.9
    # Stratified: every class keeps close to 15 % of its images for validation.
    for label in range(5):
        share = (val_count := int((datamodule.labels["val"] == label).sum())) / (
            val_count + int((datamodule.labels["train"] == label).sum())
        )
        assert 0.12 < share < 0.18
    assert not set(datamodule.files["train"]) & set(datamodule.files["val"])


def test_split_is_seeded(tmp_path):
    root = copy_classes(tmp_path / "images", per_class=14)
    first = HandSignDataModule(data_dir=str(root), classes=None, image_size=32, seed=3)
    second = HandSignDataModule(data_dir=str(root), classes=None, image_size=32, seed=3)
    other = HandSignDataModule(data_dir=str(root), classes=None, image_size=32, seed=4)
    for datamodule in (first, second, other):
        datamodule.setup("fit")
    assert first.files["val"] == second.files["val"]
    assert first.files["val"] != other.files["val"]


def test_hidden_entries_and_class_order(tmp_path):
    root = copy_classes(tmp_path / "images", classes=("2", "0"), per_class=6)
    (root / ".cache").mkdir()
    shutil.copy(next((DATA / "5").glob("*.JPG")), root / ".cache" / "x.JPG")
    shutil.copy(next((DATA / "5").glob("*.JPG")), root / "0" / ".hidden.JPG")
    (root / "0" / "notes.txt").write_text("not an image")
    datamodule = HandSignDataModule(data_dir=str(root), classes=None, image_size=32, val_fraction=0.34)
    datamodule.setup("fit")
    assert datamodule.class_names == ("0", "2")
    every_file = datamodule.files["train"] + datamodule.files["val"]
    assert len(every_file) == 12
    labels = torch.cat([datamodule.labels["train"], datamodule.labels["val"]]).tolist()
    for path, label in zip(every_file, labels):
        assert Path(path).parent.name == datamodule.class_names[label]


def test_grayscale_and_64_pixels(tmp_path):
    root = copy_classes(tmp_path / "images", classes=("3", "4"), per_class=5)
    datamodule = HandSignDataModule(data_dir=str(root), classes=["4"], image_size=64, grayscale=True,
                                    val_fraction=0.4)
    datamodule.setup("fit")
    assert datamodule.images["train"].shape == (3, 1, 64, 64)
    assert datamodule.num_classes == 1
    assert datamodule.labels["val"].tolist() == [0, 0]


def test_empty_class_folder_error(tmp_path):
    root = copy_classes(tmp_path / "images", classes=("0", "1"), per_class=4)
    (root / "7").mkdir()
    with pytest.raises(DataError, match=r"images[/\\]7"):
        HandSignDataModule(data_dir=str(root), classes=None, image_size=32).setup("fit")


def test_truncated_jpeg_skipped_with_warning(tmp_path):
    root = copy_classes(tmp_path / "images", classes=("0", "1"), per_class=8)
    broken = sorted((root / "1").glob("*.JPG"))[2]
    data = broken.read_bytes()
    broken.write_bytes(data[: len(data) // 3])
    datamodule = HandSignDataModule(data_dir=str(root), classes=None, image_size=32, val_fraction=0.25)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        datamodule.setup("fit")
    messages = [str(w.message) for w in caught if "unreadable or truncated" in str(w.message)]
    assert len(messages) == 1
    assert "skipped 1 " in messages[0] and str(broken) in messages[0]
    assert datamodule.skipped_files == [str(broken)]
    assert len(datamodule.files["train"]) + len(datamodule.files["val"]) == 15
    assert str(broken) not in datamodule.files["train"] + datamodule.files["val"]


def test_missing_folder_and_unknown_class(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match="nowhere"):
        HandSignDataModule(data_dir=str(missing)).setup("fit")
    root = copy_classes(tmp_path / "images", classes=("0",), per_class=4)
    with pytest.raises(ConfigError, match=r"\['9'\]"):
        HandSignDataModule(data_dir=str(root), classes=["0", "9"]).setup("fit")
    with pytest.raises(ConfigError, match="image_size"):
        HandSignDataModule(image_size=48)
