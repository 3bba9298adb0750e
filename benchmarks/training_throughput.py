"""Compare Lightning training throughput with a plain PyTorch loop of the same network and data.

    python benchmarks/training_throughput.py [--repeats 3] [--variants]

Each measurement is one training epoch over the 45,000 MNIST training images at batch size 256,
without validation, after one warm-up epoch. Lightning and the plain loop alternate, so a change
in machine load hits both. `--variants` also times channels_last and torch.compile in the plain loop.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import lightning as L  # noqa: E402

from datamodules import MNISTDataModule  # noqa: E402
from lightning_modules import AutoencoderModule  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


class EpochTimer(L.Callback):
    def __init__(self) -> None:
        self.durations: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.durations.append(time.perf_counter() - self._start)


def lightning_epoch_seconds(datamodule: MNISTDataModule) -> float:
    """Return the duration of the second of two Lightning training epochs."""
    torch.manual_seed(0)
    timer = EpochTimer()
    with tempfile.TemporaryDirectory() as folder:
        trainer = L.Trainer(
            max_epochs=2,
            accelerator="cpu",
            devices=1,
            limit_val_batches=0,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[timer],
            default_root_dir=folder,
        )
        trainer.fit(AutoencoderModule(), datamodule=datamodule)
    return timer.durations[-1]


def plain_epoch_seconds(datamodule: MNISTDataModule, channels_last: bool = False, compiled: bool = False) -> float:
    """Return the duration of the second of two epochs of a hand-written training loop."""
    torch.manual_seed(0)
    module = AutoencoderModule()
    network = torch.nn.Sequential(module.encoder, module.decoder)
    if channels_last:
        network = network.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)
    step_network = torch.compile(network) if compiled else network
    loader = datamodule.train_dataloader()
    durations = []
    for _ in range(2):
        start = time.perf_counter()
        for images, _ in loader:
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            loss = F.mse_loss(step_network(images), images)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        durations.append(time.perf_counter() - start)
    return durations[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", action="store_true", help="also time channels_last and torch.compile")
    args = parser.parse_args()

    datamodule = MNISTDataModule(data_dir=str(ROOT / "data"))
    datamodule.setup("fit")
    images = len(datamodule.images["train"])
    print(f"autoencoder, {images} images per epoch, batch 256, torch threads {torch.get_num_threads()}")

    runs = {"plain": [], "lightning": []}
    if args.variants:
        runs.update({"plain_channels_last": [], "plain_compiled": []})
    for _ in range(args.repeats):
        runs["plain"].append(plain_epoch_seconds(datamodule))
        runs["lightning"].append(lightning_epoch_seconds(datamodule))
        if args.variants:
            runs["plain_channels_last"].append(plain_epoch_seconds(datamodule, channels_last=True))
            runs["plain_compiled"].append(plain_epoch_seconds(datamodule, compiled=True))

    reference = images / statistics.median(runs["plain"])
    for name, durations in runs.items():
        rate = images / statistics.median(durations)
        print(f"{name:>20}: {rate:7.0f} images/s (median of {[round(images / d) for d in durations]}), "
              f"{rate / reference:.2f}x the plain loop")


if __name__ == "__main__":
    main()
