"""Class-conditional DCGAN trained with manual optimization, with optional stabilization.

Stabilization, both off by default (the plain DCGAN):
  * one-sided label smoothing: the discriminator's target for real images becomes
    1 - label_smoothing; fakes keep target 0 and the generator keeps target 1;
  * instance noise: Gaussian noise added to every image the discriminator receives during
    training, its standard deviation falling linearly to 0 over a number of epochs.

Two remedies for a small training set, also off by default: differentiable augmentation of
every image the discriminator receives, and a mode-seeking term in the generator loss.
"""

import math
import warnings
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.strategies import DDPStrategy
import torch.nn.functional as F
from torchvision.utils import make_grid, save_image

from analysis.figures import plt, save_figure
from analysis.io import write_json, write_text
from datamodules.errors import ConfigError
from lightning_modules.callbacks import MetricCurves
from lightning_modules.dcgan_networks import SUPPORTED_IMAGE_SIZES, Discriminator, Generator
from lightning_modules.diff_augment import TRANSFORMS, diff_augment, parse_policy
from lightning_modules.run_folder import run_folder


def discriminator_targets(label_smoothing: float) -> dict[str, float]:
    """BCE targets: smoothing lowers only the discriminator's target for real images."""
    return {"real": 1.0 - label_smoothing, "fake": 0.0, "generator": 1.0}


def instance_noise_sigma(start: float, anneal_epochs: float, progress_epochs: float) -> float:
    """Noise std after `progress_epochs` (fractional epochs): linear from `start` to 0, then 0."""
    if start <= 0 or anneal_epochs <= 0:
        return 0.0
    remaining = max(0.0, 1.0 - progress_epochs / anneal_epochs)
    return start * remaining


def discriminator_accuracy(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """Share of real images with logit > 0 and of fakes with logit < 0, and both together.

    Always thresholded at logit 0 (probability 0.5), whatever the training targets are.
    """
    real_right = (real_logits > 0).float()
    fake_right = (fake_logits < 0).float()
    return {
        "d_acc_real": real_right.mean(),
        "d_acc_fake": fake_right.mean(),
        "d_acc": torch.cat([real_right, fake_right]).mean(),
    }


def save_image_file(images: torch.Tensor, path: Path, **grid_options) -> None:
    """Save images in [0, 1] as one PNG through a temporary file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    save_image(images, partial, format="png", **grid_options)
    partial.replace(path)


class DCGANModule(L.LightningModule):
    """Class-conditional DCGAN for the hand-sign photos.

    Args:
        num_classes: number of classes; must match the datamodule.
        image_size: 32 or 64; must match the datamodule.
        channels: 3 for RGB, 1 for grayscale; must match the datamodule.
        latent_dim: size of the noise vector.
        embedding_dim: size of the generator's class embedding.
        generator_width: channels of the generator's last hidden layer (doubling toward its input).
        discriminator_width: channels of the discriminator's first layer (doubling toward its output).
        learning_rate_generator, learning_rate_discriminator: Adam learning rates.
        betas: Adam betas of both optimizers.
        label_smoothing: 0 for off; 0.1 makes the discriminator's target for real images 0.9.
        instance_noise: starting std of the instance noise (images are in [-1, 1]); 0 for off.
        instance_noise_epochs: epochs over which that std falls linearly to 0.
        augment: differentiable augmentation of every image D receives in training, real and fake
            alike: a comma-separated list of "color", "translation", "cutout"; "" for off.
        mode_seeking: weight of a generator loss term that grows when two noise vectors of the
            same class give similar images (0 for off).
        sample_every_n_epochs: how often to draw the per-class sample grid (0 for never).
        samples_per_class: images per class in the training sample grids.
        test_images_per_class: images generated per class at test time (grids show up to 64).
        noise_seed: seed of the fixed noise behind the sample grids, validation fakes and tests.
        classifier_dir: folder for the evaluation classifier checkpoint (trained once per data setting).
        classifier_epochs: training epochs of that classifier when no checkpoint exists yet.
    """

    def __init__(
        self,
        num_classes: int = 5,
        image_size: int = 32,
        channels: int = 3,
        latent_dim: int = 100,
        embedding_dim: int = 32,
        generator_width: int = 64,
        discriminator_width: int = 64,
        learning_rate_generator: float = 2e-4,
        learning_rate_discriminator: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        label_smoothing: float = 0.0,
        instance_noise: float = 0.0,
        instance_noise_epochs: int = 0,
        augment: str = "",
        mode_seeking: float = 0.0,
        sample_every_n_epochs: int = 10,
        samples_per_class: int = 8,
        test_images_per_class: int = 200,
        noise_seed: int = 1234,
        classifier_dir: str = "runs/hand_sign_classifier",
        classifier_epochs: int = 15,
    ) -> None:
        super().__init__()
        if image_size not in SUPPORTED_IMAGE_SIZES:
            raise ConfigError(f"image_size must be one of {SUPPORTED_IMAGE_SIZES}, got {image_size}")
        if num_classes < 1:
            raise ConfigError(f"num_classes must be at least 1, got {num_classes}")
        if channels not in (1, 3):
            raise ConfigError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels}")
        if min(latent_dim, embedding_dim, generator_width, discriminator_width) < 1:
            raise ConfigError("latent_dim, embedding_dim and the network widths must be positive")
        if min(learning_rate_generator, learning_rate_discriminator) <= 0:
            raise ConfigError(
                f"learning rates must be positive, got generator {learning_rate_generator} "
                f"and discriminator {learning_rate_discriminator}"
            )
        if len(betas) != 2 or not all(0.0 <= beta < 1.0 for beta in betas):
            raise ConfigError(f"betas must be two values in [0, 1), got {betas}")
        if not 0.0 <= label_smoothing < 0.5:
            raise ConfigError(
                f"label_smoothing must be in [0, 0.5) (0.1 gives real target 0.9), got {label_smoothing}"
            )
        if instance_noise < 0:
            raise ConfigError(f"instance_noise must be 0 (off) or a positive std, got {instance_noise}")
        if instance_noise > 0 and instance_noise_epochs <= 0:
            raise ConfigError(
                f"instance_noise_epochs must be positive when instance_noise is on, got {instance_noise_epochs}"
            )
        try:
            self.augment_transforms = parse_policy(augment)
        except ValueError as error:
            raise ConfigError(
                f"augment={augment!r} is not valid: {error}. Use a comma-separated list of "
                f"{', '.join(TRANSFORMS)}, or an empty string for no augmentation"
            ) from None
        if mode_seeking < 0:
            raise ConfigError(f"mode_seeking must be 0 (off) or a positive weight, got {mode_seeking}")
        if sample_every_n_epochs < 0 or samples_per_class < 1:
            raise ConfigError("sample_every_n_epochs must be 0 or more and samples_per_class at least 1")
        if test_images_per_class < 64:
            raise ConfigError(
                f"test_images_per_class must be at least 64 (one full test grid), got {test_images_per_class}"
            )
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.generator = Generator(latent_dim, num_classes, image_size, channels, generator_width, embedding_dim)
        self.discriminator = Discriminator(num_classes, image_size, channels, discriminator_width)
        self.targets = discriminator_targets(label_smoothing)
        self.class_names: tuple[str, ...] = tuple(str(label) for label in range(num_classes))

    # ----- helpers -------------------------------------------------------------------------
    def forward(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.generator(noise, labels)

    def fixed_noise(self, count: int, stream: int) -> torch.Tensor:
        """Return noise that is identical on every call, device and process for a (count, stream) pair."""
        generator = torch.Generator().manual_seed(self.hparams.noise_seed * 1_000_003 + stream)
        return torch.randn(count, self.hparams.latent_dim, generator=generator).to(self.device)

    def current_sigma(self, batch_idx: int) -> float:
        """Return the instance noise std for this batch, from the epoch and batch counters.

        trainer.global_step would run twice as fast here because it counts optimizer steps, two per batch.
        """
        batches = self.trainer.num_training_batches if self._trainer is not None else math.inf
        batches = batches if batches and math.isfinite(batches) else 1
        progress = self.current_epoch + batch_idx / batches
        return instance_noise_sigma(self.hparams.instance_noise, self.hparams.instance_noise_epochs, progress)

    def _noisy(self, images: torch.Tensor, sigma: float) -> torch.Tensor:
        return images + sigma * torch.randn_like(images) if sigma > 0 else images

    def _discriminator_input(self, images: torch.Tensor, sigma: float) -> torch.Tensor:
        """Return what D receives in training: augmented, then with instance noise, for real and fake alike."""
        return self._noisy(diff_augment(images, self.augment_transforms), sigma)

    def _mode_seeking_penalty(self, fake: torch.Tensor, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Inverse of how far images move per unit of noise, for a second noise draw of the same labels.

        A generator that ignores its noise gives near-identical images per class and a large value,
        which D alone cannot penalize because it judges one image at a time.
        """
        other_noise = torch.randn_like(noise)
        other = self.generator(other_noise, labels)
        image_distance = (fake - other).abs().flatten(1).mean(1)
        noise_distance = (noise - other_noise).abs().mean(1)
        return 1.0 / ((image_distance / noise_distance).mean() + 1e-5)

    def _bce(self, logits: torch.Tensor, target: float) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))

    # ----- Lightning hooks -----------------------------------------------------------------
    def configure_optimizers(self):
        betas = tuple(self.hparams.betas)
        optimizer_d = torch.optim.Adam(
            self.discriminator.parameters(), lr=self.hparams.learning_rate_discriminator, betas=betas
        )
        optimizer_g = torch.optim.Adam(
            self.generator.parameters(), lr=self.hparams.learning_rate_generator, betas=betas
        )
        return [optimizer_d, optimizer_g]

    def configure_callbacks(self):
        # This is the earliest hook with the trainer attached. Lightning's own check of these
        # settings runs right after it and would stop with a traceback instead of a ConfigError.
        self._check_trainer_settings()
        if self._trainer is not None and any(isinstance(c, MetricCurves) for c in self.trainer.callbacks):
            return []
        return [
            MetricCurves(
                {
                    "loss": ("BCE loss", ["train/d_loss", "val/d_loss", "train/g_loss", "val/g_loss"]),
                    "accuracy": (
                        "accuracy",
                        ["train/d_acc", "val/d_acc", "train/g_success", "val/g_success"],
                    ),
                    "d_accuracy_real_fake": (
                        "discriminator accuracy",
                        ["train/d_acc_real", "train/d_acc_fake", "val/d_acc_real", "val/d_acc_fake"],
                    ),
                    "d_output": (
                        "mean sigmoid of D logits",
                        ["train/d_real", "train/d_fake", "val/d_real", "val/d_fake"],
                    ),
                    "sigma": ("instance noise std", ["train/sigma"]),
                }
            )
        ]

    def _check_trainer_settings(self) -> None:
        if self._trainer is None:
            return
        clip = self.trainer.gradient_clip_val
        if clip is not None and clip > 0:
            raise ConfigError(
                f"trainer.gradient_clip_val={clip} is not supported by DCGANModule: it steps its two "
                f"optimizers by hand, so the Trainer cannot clip. Remove gradient_clip_val; for "
                f"stability use model.label_smoothing or model.instance_noise instead"
            )
        strategy = self.trainer.strategy
        if isinstance(strategy, DDPStrategy) and not strategy._ddp_kwargs.get("find_unused_parameters", False):
            # The discriminator step leaves the generator's parameters without gradients, and
            # DDP without unused-parameter detection then waits for them forever.
            raise ConfigError(
                f"trainer.strategy={type(strategy).__name__} without find_unused_parameters is not supported "
                f"by DCGANModule: each of its two optimizer steps uses only one network. Use "
                f"`strategy: ddp_find_unused_parameters_true` instead"
            )
        if self.trainer.accumulate_grad_batches != 1:
            raise ConfigError(
                f"trainer.accumulate_grad_batches={self.trainer.accumulate_grad_batches} is not supported "
                f"by DCGANModule: it steps its two optimizers once per batch by hand. Remove it and "
                f"raise data.batch_size instead"
            )

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if datamodule is None or not hasattr(datamodule, "image_size"):
            return
        datamodule.setup(stage)
        expected = {
            "image_size": datamodule.image_size,
            "channels": datamodule.channels,
            "num_classes": len(datamodule.class_names),
        }
        for name, value in expected.items():
            if self.hparams[name] != value:
                raise ConfigError(
                    f"model.{name}={self.hparams[name]} does not match the data ({value}); "
                    f"set model.init_args.{name}: {value} or change the data settings"
                )
        self.class_names = tuple(datamodule.class_names)

    def training_step(self, batch, batch_idx):
        real, labels = batch
        optimizer_d, optimizer_g = self.optimizers()
        sigma = self.current_sigma(batch_idx)
        noise = torch.randn(len(real), self.hparams.latent_dim, device=self.device)
        fake = self.generator(noise, labels)

        # Discriminator step: real and fake in separate passes, so BatchNorm never mixes them.
        self.toggle_optimizer(optimizer_d)
        real_logits = self.discriminator(self._discriminator_input(real, sigma), labels)
        fake_logits = self.discriminator(self._discriminator_input(fake.detach(), sigma), labels)
        d_loss = self._bce(real_logits, self.targets["real"]) + self._bce(fake_logits, self.targets["fake"])
        optimizer_d.zero_grad()
        self.manual_backward(d_loss)
        optimizer_d.step()
        self.untoggle_optimizer(optimizer_d)

        # Generator step against the updated discriminator.
        self.toggle_optimizer(optimizer_g)
        generated_logits = self.discriminator(self._discriminator_input(fake, sigma), labels)
        g_loss = self._bce(generated_logits, self.targets["generator"])
        g_total = g_loss
        if self.hparams.mode_seeking > 0:
            penalty = self._mode_seeking_penalty(fake, noise, labels)
            g_total = g_loss + self.hparams.mode_seeking * penalty
            self.log("train/mode_seeking", penalty.detach(), on_step=False, on_epoch=True, sync_dist=True,
                     batch_size=len(real))
        optimizer_g.zero_grad()
        self.manual_backward(g_total)
        optimizer_g.step()
        self.untoggle_optimizer(optimizer_g)

        self._log_stage(
            "train", d_loss, g_loss, real_logits.detach(), fake_logits.detach(), generated_logits.detach()
        )
        self.log("train/sigma", sigma, on_step=False, on_epoch=True, sync_dist=True, batch_size=len(real))

    def _log_stage(self, stage, d_loss, g_loss, real_logits, fake_logits, generated_logits) -> None:
        values = {"d_loss": d_loss.detach(), "g_loss": g_loss.detach()}
        values.update(discriminator_accuracy(real_logits, fake_logits))
        values["g_success"] = (generated_logits > 0).float().mean()
        values["d_real"] = torch.sigmoid(real_logits).mean()
        values["d_fake"] = torch.sigmoid(fake_logits).mean()
        self.log_dict(
            {f"{stage}/{key}": value for key, value in values.items()},
            on_step=False,
            on_epoch=True,
            sync_dist=True,
            batch_size=len(real_logits),
            prog_bar=False,
        )

    def _evaluate_batch(self, batch, batch_idx, stage: str) -> None:
        """Log D and G metrics for held-out real images against fakes from fixed noise."""
        real, labels = batch
        fake = self.generator(self.fixed_noise(len(real), stream=10_000 + batch_idx), labels)
        real_logits = self.discriminator(real, labels)
        fake_logits = self.discriminator(fake, labels)
        # Hard targets, so the variants' validation losses are comparable.
        d_loss = self._bce(real_logits, 1.0) + self._bce(fake_logits, 0.0)
        g_loss = self._bce(fake_logits, 1.0)
        self._log_stage(stage, d_loss, g_loss, real_logits, fake_logits, fake_logits)

    def validation_step(self, batch, batch_idx):
        self._evaluate_batch(batch, batch_idx, "val")

    def test_step(self, batch, batch_idx):
        self._evaluate_batch(batch, batch_idx, "test")

    # ----- files ---------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        if not self.trainer.is_global_zero:
            return
        folder = run_folder(self.trainer)
        write_text(str(self.generator) + "\n\n" + str(self.discriminator) + "\n", folder / "model_summary.txt")
        datamodule = self.trainer.datamodule
        if datamodule is not None and hasattr(datamodule, "describe"):
            write_json(datamodule.describe(), folder / "data_summary.json")

    @torch.no_grad()
    def generate(self, images_per_class: int, stream: int, batch_size: int = 256) -> torch.Tensor:
        """Generate images in [-1, 1] from fixed noise, class by class: (classes, per class, C, H, W)."""
        was_training = self.generator.training
        self.generator.eval()
        per_class = []
        for label in range(self.hparams.num_classes):
            noise = self.fixed_noise(images_per_class, stream=stream)
            labels = torch.full((images_per_class,), label, dtype=torch.long, device=self.device)
            chunks = [
                self.generator(noise[start : start + batch_size], labels[start : start + batch_size])
                for start in range(0, images_per_class, batch_size)
            ]
            per_class.append(torch.cat(chunks).cpu())
        self.generator.train(was_training)
        return torch.stack(per_class)

    def on_train_epoch_end(self) -> None:
        every = self.hparams.sample_every_n_epochs
        epoch = self.current_epoch + 1
        last = epoch >= (self.trainer.max_epochs or 0)
        if every <= 0 or (epoch % every and not last) or not self.trainer.is_global_zero:
            return
        # The same noise for every class and epoch, so rows differ only by class and grids by epoch.
        samples = self.generate(self.hparams.samples_per_class, stream=1)
        grid = make_grid(
            (samples.flatten(0, 1) + 1) / 2, nrow=self.hparams.samples_per_class, padding=2, pad_value=1.0
        )
        logger = self.logger
        if logger is not None and hasattr(logger.experiment, "add_image"):
            logger.experiment.add_image("samples_per_class", grid, global_step=epoch)
        save_image_file(grid, run_folder(self.trainer) / f"samples_epoch_{epoch:03d}.png")

    def on_test_epoch_end(self) -> None:
        if not self.trainer.is_global_zero:
            return
        from analysis.gan_evaluation import evaluate_generator  # noqa: PLC0415  (needs sklearn/plots)

        folder = run_folder(self.trainer)
        generated = self.generate(self.hparams.test_images_per_class, stream=2)
        unit = (generated + 1) / 2
        for label, name in enumerate(self.class_names):
            save_image_file(unit[label, :64], folder / f"test_grid_class_{name}.png", nrow=8, padding=2, pad_value=1.0)
            for index, image in enumerate(unit[label]):
                save_image_file(image, folder / "generated" / name / f"{index:04d}.png")
        datamodule = self.trainer.datamodule
        if datamodule is None or not hasattr(datamodule, "images"):
            warnings.warn("no hand-sign datamodule attached; skipping the FID/KID evaluation", stacklevel=2)
            return
        metrics = evaluate_generator(
            generated,
            datamodule,
            classifier_dir=Path(self.hparams.classifier_dir),
            classifier_epochs=self.hparams.classifier_epochs,
            seed=self.hparams.noise_seed,
        )
        metrics["test_discriminator"] = {
            key.split("/", 1)[1]: float(value)
            for key, value in self.trainer.callback_metrics.items()
            if key.startswith("test/")
        }
        metrics["checkpoint"] = self.trainer.ckpt_path
        self._plot_test_summary(metrics, folder)
        # Written last: its presence means every file of the test is complete.
        write_json(metrics, folder / "gan_metrics.json")

    def _plot_test_summary(self, metrics: dict, folder: Path) -> None:
        names = list(self.class_names)
        accuracy = [metrics["generated"]["classifier_accuracy_per_class"][name] for name in names]
        floor = [metrics["real_train"]["classifier_accuracy_per_class"][name] for name in names]
        figure, axes = plt.subplots(figsize=(1.0 + 0.8 * len(names), 3.2))
        positions = range(len(names))
        axes.bar([p - 0.2 for p in positions], floor, width=0.4, label="real train images")
        axes.bar([p + 0.2 for p in positions], accuracy, width=0.4, label="generated images")
        axes.set_xticks(list(positions), names)
        axes.set_xlabel("class")
        axes.set_ylabel("classifier accuracy")
        axes.set_ylim(0, 1.05)
        axes.set_title(
            f"FID {metrics['generated']['fid']:.1f} (real floor {metrics['real_train']['fid']:.1f})", fontsize=9
        )
        axes.legend(fontsize=7, loc="lower right")
        save_figure(figure, folder / "test_classifier_accuracy.png")
