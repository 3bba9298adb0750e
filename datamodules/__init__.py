from datamodules.errors import ConfigError, DataError
from datamodules.mnist import FashionMNISTDataModule, IDXImageDataModule, MNISTDataModule

__all__ = ["ConfigError", "DataError", "FashionMNISTDataModule", "IDXImageDataModule", "MNISTDataModule"]
from datamodules.hand_sign import HandSignDataModule  # noqa: E402

__all__ += ["HandSignDataModule"]
