"""Sign Language Digits photos (one folder per class) as in-memory tensors in [-1, 1]."""

import warnings
from pathlib import Path
from typing import Optional

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info
from PIL import Image, ImageOps
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, TensorDataset
from torchvision.datasets.folder import IMG_EXTENSIONS

from datamodules.errors import ConfigError, DataError, check_loader_settings

SPLITS = ("train", "val")
SUPPORTED_IMAGE_SIZES = (32, 64)


def find_class_folders(root: Path) -> list[str]:
    """Return the sorted names of the class folders in `root`; hidden entries are never classes."""
    if not root.is_dir():
        raise DataError(
            f"image folder {root} does not exist or is not a folder; expected one subfolder "
            f"of images per class, e.g. {root}/0/*.JPG"
        )
    names = sorted(entry.name for entry in root.iterdir() if entry.is_dir() and not entry.name.startswith("."))
    if not names:
        raise DataError(f"image folder {root} has no class subfolders; expected e.g. {root}/0/*.JPG")
    return names


def list_image_files(folder: Path) -> list[Path]:
    """Return the sorted, non-hidden files of `folder` whose suffix is an image extension."""
    return sorted(
        path
        for path in folder.iterdir()
        if path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMG_EXTENSIONS
    )


def decode_image(path: Path, image_size: int, grayscale: bool) -> np.ndarray:
    """Decode, center-crop to a square and resize one image; returns uint8 HxWxC.

    Raises OSError (or a PIL error) when the file is unreadable or truncated.
    """
    with Image.open(path) as image:
        # JPEG draft mode decodes large photos at a reduced scale, which is much faster.
        image.draft("L" if grayscale else "RGB", (image_size * 2, image_size * 2))
        image.load()
        image = image.convert("L" if grayscale else "RGB")
        image = ImageOps.fit(image, (image_size, image_size), method=Image.Resampling.LANCZOS)
        pixels = np.asarray(image, dtype=np.uint8)
    return pixels[:, :, None] if grayscale else pixels


class HandSignDataModule(L.LightningDataModule):
    """A folder of class subfolders of photos, decoded once into tensors in [-1, 1].

    Class indices follow the sorted names of the chosen class folders. Unreadable or
    truncated images are found while loading, skipped and reported in one warning, so they
    never stop a training epoch.

    Args:
        data_dir: folder with one subfolder of images per class.
        classes: names of the class folders to use; None uses every class folder.
        image_size: side of the square images after center-cropping and resizing (32 or 64).
        grayscale: load one channel instead of RGB.
        batch_size: images per batch for every split.
        val_fraction: share of each class held out for validation (stratified, seeded).
        seed: seed of the train/validation split.
        num_workers: DataLoader worker processes; the data is already in memory, so 0 is fastest
            on small machines.
        max_images_per_class: use only the first this many files of each class (sorted by
            name), for quick runs and tests; None uses all.
    """

    def __init__(
        self,
        data_dir: str = "data/sign-language-digits",
        classes: Optional[list[str]] = ("0", "1", "2", "3", "4"),
        image_size: int = 64,
        grayscale: bool = False,
        batch_size: int = 64,
        val_fraction: float = 0.15,
        seed: int = 42,
        num_workers: int = 0,
        max_images_per_class: Optional[int] = None,
    ) -> None:
        super().__init__()
        if image_size not in SUPPORTED_IMAGE_SIZES:
            raise ConfigError(f"image_size must be one of {SUPPORTED_IMAGE_SIZES}, got {image_size}")
        check_loader_settings(batch_size, val_fraction, num_workers)
        if max_images_per_class is not None and max_images_per_class < 2:
            raise ConfigError(
                f"max_images_per_class must be at least 2 (one train and one validation image), "
                f"got {max_images_per_class}"
            )
        if classes is not None:
            classes = [str(name) for name in classes]
            if not classes:
                raise ConfigError("classes must name at least one class folder, or be null for all")
            if len(set(classes)) != len(classes):
                raise ConfigError(f"classes must not repeat a name, got {classes}")
        self.save_hyperparameters()
        self.data_dir = Path(data_dir)
        self.requested_classes = classes
        self.image_size = image_size
        self.grayscale = grayscale
        self.batch_size = batch_size
        self.val_fraction = val_fraction
        self.seed = seed
        self.num_workers = num_workers
        self.max_images_per_class = max_images_per_class

        self.class_names: tuple[str, ...] = ()
        self.images: dict[str, torch.Tensor] = {}
        self.labels: dict[str, torch.Tensor] = {}
        self.files: dict[str, list[str]] = {}
        self.skipped_files: list[str] = []

    @property
    def channels(self) -> int:
        return 1 if self.grayscale else 3

    @property
    def num_classes(self) -> int:
        """Return the number of classes, also before setup, because it only lists folders."""
        if self.class_names:
            return len(self.class_names)
        return len(self._choose_classes())

    def _choose_classes(self) -> list[str]:
        available = find_class_folders(self.data_dir)
        if self.requested_classes is None:
            return available
        missing = [name for name in self.requested_classes if name not in available]
        if missing:
            raise ConfigError(
                f"classes {missing} have no folder in {self.data_dir}; available classes: {available}"
            )
        return sorted(self.requested_classes)

    def setup(self, stage: Optional[str] = None) -> None:
        if self.images:
            return
        class_names = self._choose_classes()
        all_pixels, all_labels, all_files = [], [], []
        skipped: list[tuple[Path, str]] = []
        for label, name in enumerate(class_names):
            folder = self.data_dir / name
            paths = list_image_files(folder)
            if not paths:
                raise DataError(
                    f"class folder {folder} is empty: it contains no image files (extensions {', '.join(IMG_EXTENSIONS)}); "
                    f"add images or leave the class out of `classes`"
                )
            if self.max_images_per_class is not None:
                paths = paths[: self.max_images_per_class]
            decoded_here = 0
            for path in paths:
                try:
                    pixels = decode_image(path, self.image_size, self.grayscale)
                except (OSError, ValueError, Image.DecompressionBombError) as error:
                    skipped.append((path, f"{type(error).__name__}: {error}"))
                    continue
                all_pixels.append(pixels)
                all_labels.append(label)
                all_files.append(str(path))
                decoded_here += 1
            if decoded_here < 2:
                raise DataError(
                    f"class folder {folder} has {decoded_here} readable images; at least 2 are needed "
                    f"(one for training, one for validation)"
                )
        if skipped:
            listing = "\n".join(f"  {path}: {reason}" for path, reason in skipped)
            warnings.warn(
                f"skipped {len(skipped)} unreadable or truncated image(s) in {self.data_dir}:\n{listing}",
                stacklevel=2,
            )
        self.skipped_files = [str(path) for path, _ in skipped]

        labels = np.asarray(all_labels)
        indices = np.arange(len(labels))
        try:
            train_indices, val_indices = train_test_split(
                indices, test_size=self.val_fraction, stratify=labels, random_state=self.seed
            )
        except ValueError as error:
            raise ConfigError(
                f"cannot split {len(labels)} images of {len(class_names)} classes with val_fraction "
                f"{self.val_fraction} ({error}); use more images per class or a larger val_fraction"
            ) from None

        # uint8 HWC -> float CHW in [-1, 1], the range of the generator's tanh output.
        pixels = torch.from_numpy(np.stack(all_pixels)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        for split, chosen in (("train", np.sort(train_indices)), ("val", np.sort(val_indices))):
            index = torch.from_numpy(chosen)
            self.images[split] = pixels[index].contiguous()
            self.labels[split] = torch.from_numpy(labels[chosen]).long()
            self.files[split] = [all_files[position] for position in chosen]
        self.class_names = tuple(class_names)

        shapes = ", ".join(f"{split} {tuple(self.images[split].shape)}" for split in SPLITS)
        rank_zero_info(f"hand signs from {self.data_dir}: classes {list(class_names)}; {shapes}")

    def _loader(self, split: str, shuffle: bool, drop_last: bool = False) -> DataLoader:
        dataset = TensorDataset(self.images[split], self.labels[split])
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        # A last batch of a few images would give BatchNorm very noisy statistics.
        drop_last = len(self.images["train"]) > self.batch_size
        return self._loader("train", shuffle=True, drop_last=drop_last)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        # There is no separate test set: testing a generator compares it with the validation images.
        return self._loader("val", shuffle=False)

    @staticmethod
    def unnormalize(images: torch.Tensor) -> torch.Tensor:
        """Map images from [-1, 1] to [0, 1]."""
        return ((images + 1.0) / 2.0).clamp(0.0, 1.0)

    def describe(self) -> dict:
        """Return the classes, split shapes and skipped files, for the run folder."""
        return {
            "dataset": "sign-language-digits",
            "data_folder": str(self.data_dir.resolve()),
            "classes": list(self.class_names),
            "shapes": {split: list(self.images[split].shape) for split in SPLITS},
            "images_per_class": {
                split: {
                    name: int((self.labels[split] == label).sum())
                    for label, name in enumerate(self.class_names)
                }
                for split in SPLITS
            },
            "pixel_range": [-1.0, 1.0],
            "val_fraction": self.val_fraction,
            "seed": self.seed,
            "skipped_files": self.skipped_files,
        }
