"""MNIST and Fashion-MNIST as in-memory tensors with a stratified train/validation split."""

import math
from pathlib import Path
from typing import Optional

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, TensorDataset
from torchvision import datasets

from datamodules.errors import ConfigError, check_loader_settings
from datamodules.idx_files import FASHION_MNIST_SHA256, MNIST_SHA256, prepare_idx_folder

SPLITS = ("train", "val", "test")


def stratified_subset(labels: np.ndarray, size: Optional[int], seed: int) -> np.ndarray:
    """Return sorted indices of a seeded, label-stratified subset of `size` items (all if None)."""
    indices = np.arange(len(labels))
    if size is None or size >= len(labels):
        return indices
    chosen, _ = train_test_split(indices, train_size=size, stratify=labels, random_state=seed)
    return np.sort(chosen)


class IDXImageDataModule(L.LightningDataModule):
    """Shared loading, splitting and normalization for the 28x28 IDX datasets.

    The training file is split into train and validation parts, stratified by label and
    seeded. All three splits are normalized with the mean and standard deviation of the
    train part only, so no statistic leaks from validation or test images.

    Args:
        data_dir: folder that contains `<folder_name>/raw/` with the four IDX `.gz` files.
        batch_size: images per batch for every split.
        val_fraction: share of the training file held out for validation.
        seed: seed of the subset choice and of the train/validation split.
        num_workers: DataLoader worker processes. The data is already a tensor in memory, so
            workers only add start-up and copying cost on small machines.
        train_subset: use only this many images of the training file (stratified), for quick runs.
        test_subset: use only this many images of the test file (stratified), for quick runs.
    """

    folder_name = ""
    dataset_class: type = datasets.MNIST
    expected_sha256: dict[str, str] = {}
    class_names: tuple[str, ...] = ()

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: int = 256,
        val_fraction: float = 0.25,
        seed: int = 42,
        num_workers: int = 0,
        train_subset: Optional[int] = None,
        test_subset: Optional[int] = None,
    ) -> None:
        super().__init__()
        check_loader_settings(batch_size, val_fraction, num_workers)
        for name, value in (("train_subset", train_subset), ("test_subset", test_subset)):
            if value is not None and value < 20:
                raise ConfigError(f"{name} must be at least 20 images (2 per class), got {value}")
        self.save_hyperparameters()
        self.data_dir = Path(data_dir)
        self.batch_size = batch_size
        self.val_fraction = val_fraction
        self.seed = seed
        self.num_workers = num_workers
        self.train_subset = train_subset
        self.test_subset = test_subset

        self.images: dict[str, torch.Tensor] = {}
        self.labels: dict[str, torch.Tensor] = {}
        # Index of each image in its original file (training file for train/val, test file for test).
        self.file_indices: dict[str, np.ndarray] = {}
        self.mean = float("nan")
        self.std = float("nan")
        self._files_verified = False

    @property
    def raw_folder(self) -> Path:
        return self.data_dir / self.folder_name / "raw"

    def prepare_data(self) -> None:
        prepare_idx_folder(self.raw_folder, self.expected_sha256)
        self._files_verified = True

    def setup(self, stage: Optional[str] = None) -> None:
        if self.images:
            return
        # Checked here too unless this process ran prepare_data, which Lightning calls on one
        # process per node only.
        if not self._files_verified:
            prepare_idx_folder(self.raw_folder, self.expected_sha256)
        train_file = self.dataset_class(str(self.data_dir), train=True, download=False)
        test_file = self.dataset_class(str(self.data_dir), train=False, download=False)
        train_images, train_labels = train_file.data, train_file.targets
        test_images, test_labels = test_file.data, test_file.targets

        kept = stratified_subset(train_labels.numpy(), self.train_subset, self.seed)
        n_classes = len(self.class_names)
        n_val = math.ceil(len(kept) * self.val_fraction)
        if min(n_val, len(kept) - n_val) < n_classes:
            raise ConfigError(
                f"a stratified split needs at least {n_classes} images (one per class) on each side, "
                f"but {len(kept)} training images with val_fraction {self.val_fraction} give "
                f"{len(kept) - n_val} train and {n_val} validation images; use more images"
            )
        train_indices, val_indices = train_test_split(
            kept,
            test_size=self.val_fraction,
            stratify=train_labels.numpy()[kept],
            random_state=self.seed,
        )
        self.file_indices = {
            "train": np.sort(train_indices),
            "val": np.sort(val_indices),
            "test": stratified_subset(test_labels.numpy(), self.test_subset, self.seed),
        }

        train_pixels = train_images[torch.from_numpy(self.file_indices["train"])].float() / 255.0
        self.mean = float(train_pixels.mean())
        self.std = float(train_pixels.std())

        for split in SPLITS:
            source_images = test_images if split == "test" else train_images
            source_labels = test_labels if split == "test" else train_labels
            index = torch.from_numpy(self.file_indices[split])
            pixels = source_images[index].float().unsqueeze(1) / 255.0
            self.images[split] = (pixels - self.mean) / self.std
            self.labels[split] = source_labels[index].clone()

        shapes = ", ".join(f"{split} {tuple(self.images[split].shape)}" for split in SPLITS)
        rank_zero_info(
            f"{self.folder_name}: {shapes}; normalized with the train split's "
            f"mean {self.mean:.4f} and std {self.std:.4f}"
        )

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        dataset = TensorDataset(self.images[split], self.labels[split])
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def unnormalize(self, images: torch.Tensor) -> torch.Tensor:
        """Map normalized images back to pixel values in [0, 1]."""
        return (images * self.std + self.mean).clamp(0.0, 1.0)

    def describe(self) -> dict:
        """Return the split shapes and normalization statistics, for the run folder."""
        return {
            "dataset": self.folder_name,
            "data_folder": str(self.raw_folder.resolve()),
            "shapes": {split: list(self.images[split].shape) for split in SPLITS},
            "normalization": {
                "mean": self.mean,
                "std": self.std,
                "computed_on": "train split only, pixels scaled to [0, 1]",
            },
            "val_fraction": self.val_fraction,
            "seed": self.seed,
        }


class MNISTDataModule(IDXImageDataModule):
    """MNIST handwritten digits: 60,000 training and 10,000 test images of 28x28 pixels."""

    folder_name = "MNIST"
    dataset_class = datasets.MNIST
    expected_sha256 = MNIST_SHA256
    class_names = tuple(str(digit) for digit in range(10))


class FashionMNISTDataModule(IDXImageDataModule):
    """Fashion-MNIST clothing images: 60,000 training and 10,000 test images of 28x28 pixels."""

    folder_name = "FashionMNIST"
    dataset_class = datasets.FashionMNIST
    expected_sha256 = FASHION_MNIST_SHA256
    class_names = (
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    )
