"""Compare Lightning training throughput with a plain PyTorch loop of the same network and data.

    python benchmarks/training_throughput.py --job autoencoder [--repeats 3] [--variants]
    python benchmarks/training_throughput.py --job dcgan [--repeats 3]

Autoencoder: one epoch over the 45,000 MNIST training images at batch size 256. DCGAN: one epoch
over the hand-sign training split as configs/dcgan_plain.yaml sets it up (classes 0-4, 32x32,
batch 64, its augmentation and mode-seeking term), one discriminator and one generator step per
batch. Each measurement is the second of two epochs, without validation.
Lightning and the plain loop alternate, so a change in machine load hits both. The autoencoder
module stores its weights channels_last by default, so its reference is the plain loop with the
same layout. The contiguous plain loop is timed too. `--variants` adds torch.compile.
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


def lightning_epoch_seconds(datamodule, module_factory) -> float:
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
        trainer.fit(module_factory(), datamodule=datamodule)
    return timer.durations[-1]


def plain_epoch_seconds(datamodule: MNISTDataModule, channels_last: bool = False, compiled: bool = False) -> float:
    """Return the duration of the second of two epochs of a hand-written training loop."""
    torch.manual_seed(0)
    module = AutoencoderModule(channels_last=channels_last)
    network = torch.nn.Sequential(module.encoder, module.decoder)
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)
    step_network = torch.compile(network) if compiled else network
    loader = datamodule.train_dataloader()
    durations = []
    for _ in range(2):
        start = time.perf_counter()
        for images, _ in loader:
            loss = F.mse_loss(step_network(images), images)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        durations.append(time.perf_counter() - start)
    return durations[-1]


def dcgan_module():
    """Return the DCGAN exactly as configs/dcgan_plain.yaml builds it, without sample grids."""
    import yaml

    from lightning_modules import DCGANModule

    config = yaml.safe_load((ROOT / "configs" / "dcgan_plain.yaml").read_text())
    settings = dict(config["model"]["init_args"])
    # No sample grids: the plain loop draws none either.
    settings["sample_every_n_epochs"] = 0
    return DCGANModule(**settings)


def plain_dcgan_epoch_seconds(datamodule) -> float:
    """Return the second of two epochs of a hand-written loop doing DCGANModule's training step."""
    torch.manual_seed(0)
    module = dcgan_module()
    generator, discriminator = module.generator, module.discriminator
    optimizer_d, optimizer_g = module.configure_optimizers()
    latent_dim, mode_seeking = module.hparams.latent_dim, module.hparams.mode_seeking
    loader = datamodule.train_dataloader()
    durations = []
    for _ in range(2):
        start = time.perf_counter()
        for real, labels in loader:
            noise = torch.randn(len(real), latent_dim)
            fake = generator(noise, labels)
            # The configured augmentation, as DCGANModule applies it to every image D receives.
            real_logits = discriminator(module._discriminator_input(real, 0.0), labels)
            fake_logits = discriminator(module._discriminator_input(fake.detach(), 0.0), labels)
            d_loss = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits)) + \
                F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
            optimizer_d.zero_grad()
            d_loss.backward()
            optimizer_d.step()
            generated_logits = discriminator(module._discriminator_input(fake, 0.0), labels)
            g_loss = F.binary_cross_entropy_with_logits(generated_logits, torch.ones_like(generated_logits))
            if mode_seeking > 0:
                g_loss = g_loss + mode_seeking * module._mode_seeking_penalty(fake, noise, labels)
            optimizer_g.zero_grad()
            g_loss.backward()
            optimizer_g.step()
        durations.append(time.perf_counter() - start)
    return durations[-1]


def report(runs: dict[str, list[float]], images: int) -> None:
    reference = images / statistics.median(runs["plain"])
    for name, durations in runs.items():
        rate = images / statistics.median(durations)
        print(f"{name:>20}: {rate:7.0f} images/s (median of {[round(images / d) for d in durations]}), "
              f"{rate / reference:.2f}x the plain loop")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", choices=["autoencoder", "dcgan"], default="autoencoder")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", action="store_true", help="also time torch.compile in the plain loop")
    args = parser.parse_args()

    if args.job == "dcgan":
        from datamodules import HandSignDataModule

        datamodule = HandSignDataModule(data_dir=str(ROOT / "data" / "sign-language-digits"), image_size=32)
        datamodule.setup("fit")
        images = len(datamodule.train_dataloader().dataset)
        print(f"DCGAN, {images} images per epoch, batch 64, torch threads {torch.get_num_threads()}")
        runs = {"plain": [], "lightning": []}
        for _ in range(args.repeats):
            runs["plain"].append(plain_dcgan_epoch_seconds(datamodule))
            runs["lightning"].append(lightning_epoch_seconds(datamodule, dcgan_module))
        report(runs, images)
        return

    datamodule = MNISTDataModule(data_dir=str(ROOT / "data"))
    datamodule.setup("fit")
    images = len(datamodule.images["train"])
    print(f"autoencoder, {images} images per epoch, batch 256, torch threads {torch.get_num_threads()}")

    runs = {"plain": [], "plain_contiguous": [], "lightning": []}
    if args.variants:
        runs["plain_compiled"] = []
    for _ in range(args.repeats):
        runs["plain"].append(plain_epoch_seconds(datamodule, channels_last=True))
        runs["plain_contiguous"].append(plain_epoch_seconds(datamodule, channels_last=False))
        runs["lightning"].append(lightning_epoch_seconds(datamodule, AutoencoderModule))
        if args.variants:
            runs["plain_compiled"].append(plain_epoch_seconds(datamodule, channels_last=True, compiled=True))

    report(runs, images)


if __name__ == "__main__":
    main()
