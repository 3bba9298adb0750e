"""Check and decompress the gzip-compressed IDX files that MNIST and Fashion-MNIST ship as."""

import gzip
import hashlib
import os
import zlib
from pathlib import Path

from datamodules.errors import DataError

# sha256 of the decompressed IDX content, as published with the project's copy of the data.
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _decompress(gz_path: Path, target: Path) -> None:
    # Decompress to a side file and rename it into place, so an interrupted run never
    # leaves a partial IDX file under the name torchvision reads.
    partial = target.with_name(target.name + ".partial")
    try:
        with gzip.open(gz_path, "rb") as source, open(partial, "wb") as sink:
            for chunk in iter(lambda: source.read(1 << 20), b""):
                sink.write(chunk)
    except (EOFError, OSError, zlib.error) as error:
        partial.unlink(missing_ok=True)
        raise DataError(
            f"{gz_path} is not a complete gzip file ({error}). "
            f"Copy it again from the dataset's original distribution."
        ) from error
    os.replace(partial, target)


def prepare_idx_folder(raw_folder: Path, expected_sha256: dict[str, str]) -> None:
    """Decompress the four IDX files in `raw_folder` if needed and verify their checksums.

    Raises DataError naming the folder and the expected files when one is missing,
    truncated or has the wrong content.
    """
    raw_folder = Path(raw_folder)
    expected = sorted(expected_sha256)
    listing = ", ".join(f"{name}.gz" for name in expected)
    if not raw_folder.is_dir():
        raise DataError(
            f"data folder {raw_folder.resolve()} not found; it must contain {listing}. "
            f"Set data.init_args.data_dir to the folder that holds it."
        )
    missing = [
        f"{name}.gz"
        for name in expected
        if not (raw_folder / f"{name}.gz").is_file() and not (raw_folder / name).is_file()
    ]
    if missing:
        raise DataError(
            f"data folder {raw_folder.resolve()} is incomplete: missing {', '.join(missing)}. "
            f"It must contain {listing}."
        )

    for name in expected:
        target = raw_folder / name
        gz_path = raw_folder / f"{name}.gz"
        if target.is_file() and _sha256(target) == expected_sha256[name]:
            continue
        if gz_path.is_file():
            _decompress(gz_path, target)
        actual = _sha256(target)
        if actual != expected_sha256[name]:
            # A wrong decompressed file would shadow a good .gz on every later run.
            if gz_path.is_file():
                target.unlink()
            raise DataError(
                f"checksum mismatch for {name} in {raw_folder.resolve()}: sha256 is {actual}, "
                f"expected {expected_sha256[name]}. The file is corrupt or from another dataset; "
                f"copy the original {name}.gz again."
            )
