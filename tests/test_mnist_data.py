import gzip

import numpy as np
import pytest
import torch

from datamodules import ConfigError, DataError, FashionMNISTDataModule, MNISTDataModule
from tests.conftest import DATA_DIR, rewrite_gzip


@pytest.fixture(scope="module")
def full_mnist():
    datamodule = MNISTDataModule(data_dir=str(DATA_DIR))
    datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule


def test_full_split_sizes(full_mnist):
    assert len(full_mnist.images["train"]) == 45_000
    assert len(full_mnist.images["val"]) == 15_000
    assert len(full_mnist.images["test"]) == 10_000
    assert tuple(full_mnist.images["train"].shape[1:]) == (1, 28, 28)


def test_split_is_stratified_and_disjoint(full_mnist):
    train_counts = np.bincount(full_mnist.labels["train"].numpy(), minlength=10)
    val_counts = np.bincount(full_mnist.labels["val"].numpy(), minlength=10)
    total = train_counts + val_counts
    # Stratification keeps each label's share: 25 % of each class, up to rounding.
    assert np.all(np.abs(val_counts - 0.25 * total) <= 1)
    overlap = np.intersect1d(full_mnist.file_indices["train"], full_mnist.file_indices["val"])
    assert overlap.size == 0
    assert len(np.union1d(full_mnist.file_indices["train"], full_mnist.file_indices["val"])) == 60_000


def test_split_depends_on_seed_only():
    first = MNISTDataModule(data_dir=str(DATA_DIR), train_subset=2000, seed=3)
    second = MNISTDataModule(data_dir=str(DATA_DIR), train_subset=2000, seed=3)
    other = MNISTDataModule(data_dir=str(DATA_DIR), train_subset=2000, seed=4)
    for datamodule in (first, second, other):
        datamodule.setup("fit")
    assert np.array_equal(first.file_indices["val"], second.file_indices["val"])
    assert not np.array_equal(first.file_indices["val"], other.file_indices["val"])


def test_normalization_uses_train_split_only(full_mnist):
    from torchvision import datasets

    raw = datasets.MNIST(str(DATA_DIR), train=True, download=False).data
    train_pixels = raw[torch.from_numpy(full_mnist.file_indices["train"])].double() / 255.0
    assert full_mnist.mean == pytest.approx(float(train_pixels.mean()), abs=1e-5)
    assert full_mnist.std == pytest.approx(float(train_pixels.std()), abs=1e-5)
    assert float(full_mnist.images["train"].mean()) == pytest.approx(0.0, abs=1e-4)
    assert float(full_mnist.images["train"].std()) == pytest.approx(1.0, abs=1e-4)
    # The test split uses the train statistics, so its own mean is close to, not exactly, 0.
    test_mean = float(full_mnist.images["test"].mean())
    assert test_mean != pytest.approx(0.0, abs=1e-4)
    assert abs(test_mean) < 0.05


def test_unnormalize_restores_pixels(full_mnist):
    from torchvision import datasets

    raw = datasets.MNIST(str(DATA_DIR), train=False, download=False).data[:5].float() / 255.0
    restored = full_mnist.unnormalize(full_mnist.images["test"][:5]).squeeze(1)
    assert torch.allclose(restored, raw, atol=1e-5)


def test_fashion_mnist_loads_its_own_files():
    datamodule = FashionMNISTDataModule(data_dir=str(DATA_DIR), train_subset=1000, test_subset=200)
    datamodule.setup("fit")
    assert len(datamodule.images["train"]) == 750
    assert len(datamodule.images["val"]) == 250
    assert len(datamodule.images["test"]) == 200
    # Fashion-MNIST is brighter on average than MNIST (about 0.29 against 0.13).
    assert 0.25 < datamodule.mean < 0.33


def test_missing_folder_error_names_folder_and_files(tmp_path):
    datamodule = MNISTDataModule(data_dir=str(tmp_path / "nowhere"))
    with pytest.raises(DataError) as error:
        datamodule.prepare_data()
    message = str(error.value)
    assert str((tmp_path / "nowhere" / "MNIST" / "raw").resolve()) in message
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        assert name in message


def test_incomplete_folder_error_lists_missing_file(mnist_copy):
    (mnist_copy / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="missing t10k-labels-idx1-ubyte.gz"):
        MNISTDataModule(data_dir=str(mnist_copy)).prepare_data()


def test_checksum_mismatch_is_reported(mnist_copy):
    labels = mnist_copy / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz"
    content = bytearray(gzip.decompress(labels.read_bytes()))
    content[100] = (content[100] + 1) % 10
    rewrite_gzip(labels, bytes(content))
    with pytest.raises(DataError, match="checksum mismatch for t10k-labels-idx1-ubyte"):
        MNISTDataModule(data_dir=str(mnist_copy)).prepare_data()
    # The bad decompressed file is removed, so a fixed .gz is picked up on the next run.
    assert not (mnist_copy / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").exists()


def test_truncated_gzip_is_reported(mnist_copy):
    images = mnist_copy / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[: 200_000])
    with pytest.raises(DataError, match="not a complete gzip file"):
        MNISTDataModule(data_dir=str(mnist_copy)).prepare_data()
    assert not (mnist_copy / "MNIST" / "raw" / "t10k-images-idx3-ubyte").exists()
    assert not list((mnist_copy / "MNIST" / "raw").glob("*.partial"))


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"batch_size": -8}, "batch_size must be a positive integer"),
        ({"val_fraction": 1.0}, "val_fraction must be between 0 and 1"),
        ({"train_subset": 5}, "train_subset must be at least 20"),
    ],
)
def test_invalid_datamodule_config(arguments, message):
    with pytest.raises(ConfigError, match=message):
        MNISTDataModule(**arguments)
