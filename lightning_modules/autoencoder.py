"""Convolutional autoencoder trained with MSE; its encoder becomes the feature extractor."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities.model_summary import ModelSummary
from torchmetrics import MeanAbsoluteError, MeanSquaredError, MetricCollection

from analysis.figures import plt, save_figure
from analysis.io import write_json, write_text
from datamodules.errors import ConfigError
from lightning_modules.autoencoder_networks import ConvDecoder, ConvEncoder
from lightning_modules.callbacks import MetricCurves
from lightning_modules.run_folder import run_folder

IMAGE_PIXELS = 28 * 28


class AutoencoderModule(L.LightningModule):
    """Convolutional autoencoder for 1x28x28 images.

    Args:
        latent_dim: size of the latent vector (1 to 784; 4 to 6 for the label discovery job).
        learning_rate: Adam learning rate.
        channels: output channels of the encoder's convolution stages; the decoder mirrors them.
        channels_last: store convolution weights, and so activations, in NHWC layout. It gives
            the same outputs up to float rounding and trained about 1.4x faster on a CPU (see
            BENCHMARKS.md).
    """

    def __init__(
        self,
        latent_dim: int = 6,
        learning_rate: float = 1e-3,
        channels: tuple[int, ...] = (16, 32, 64),
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        if not 1 <= latent_dim <= IMAGE_PIXELS:
            raise ConfigError(
                f"latent_dim must be between 1 and {IMAGE_PIXELS} (the pixels of a 28x28 image), "
                f"got {latent_dim}"
            )
        if learning_rate <= 0:
            raise ConfigError(f"learning_rate must be positive, got {learning_rate}")
        if not channels or any(count <= 0 for count in channels) or len(channels) > 4:
            raise ConfigError(f"channels must be 1 to 4 positive channel counts, got {channels}")
        self.save_hyperparameters()
        self.encoder = ConvEncoder(latent_dim, tuple(channels))
        self.decoder = ConvDecoder(latent_dim, tuple(channels))
        if channels_last:
            self.to(memory_format=torch.channels_last)
        self.example_input_array = torch.zeros(1, 1, 28, 28)
        metrics = MetricCollection({"mse": MeanSquaredError(), "mae": MeanAbsoluteError()})
        # ModuleDict keys must not shadow nn.Module attributes such as `train`.
        self.metrics = torch.nn.ModuleDict(
            {f"{stage}_metrics": metrics.clone(prefix=f"{stage}/") for stage in ("train", "val", "test")}
        )
        # First test image of each class and its reconstruction, for the test figure.
        self._test_examples: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(images))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.learning_rate)

    def configure_callbacks(self):
        # A test after fit in the same process keeps the instance that fit already recorded.
        if self._trainer is not None and any(isinstance(c, MetricCurves) for c in self.trainer.callbacks):
            return []
        return [
            MetricCurves(
                {
                    "mse": ("MSE", ["train/mse", "val/mse"]),
                    "mae": ("MAE", ["train/mae", "val/mae"]),
                }
            )
        ]

    def _shared_step(self, batch, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        images, _ = batch
        reconstructions = self(images)
        loss = F.mse_loss(reconstructions, images)
        collection = self.metrics[f"{stage}_metrics"]
        collection.update(reconstructions.detach(), images)
        self.log_dict(collection, on_step=False, on_epoch=True, batch_size=len(images))
        return loss, reconstructions

    def training_step(self, batch, batch_idx):
        loss, _ = self._shared_step(batch, "train")
        self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True, logger=False)
        return loss

    def validation_step(self, batch, batch_idx):
        self._shared_step(batch, "val")

    def test_step(self, batch, batch_idx):
        _, reconstructions = self._shared_step(batch, "test")
        images, labels = batch
        for position, label in enumerate(labels.tolist()):
            if label not in self._test_examples:
                self._test_examples[label] = (images[position].cpu(), reconstructions[position].cpu())

    @torch.no_grad()
    def encode(self, images: torch.Tensor, batch_size: int = 4096) -> np.ndarray:
        """Return the latent vectors of `images` as a float32 array, computed in eval mode."""
        was_training = self.training
        self.eval()
        latents = [
            self.encoder(images[start : start + batch_size].to(self.device)).float().cpu()
            for start in range(0, len(images), batch_size)
        ]
        self.train(was_training)
        return torch.cat(latents).numpy()

    def on_fit_start(self) -> None:
        if not self.trainer.is_global_zero:
            return
        folder = run_folder(self.trainer)
        summary = ModelSummary(self, max_depth=-1)
        write_text(str(summary) + "\n", folder / "model_summary.txt")
        datamodule = self.trainer.datamodule
        if datamodule is not None and hasattr(datamodule, "describe"):
            write_json(datamodule.describe(), folder / "data_summary.json")
            self._save_sample_images(datamodule, folder)

    def _save_sample_images(self, datamodule, folder) -> None:
        figure, axes = plt.subplots(1, 2, figsize=(5, 2.8))
        for axes_item, split in zip(axes, ("train", "test")):
            image = datamodule.unnormalize(datamodule.images[split][0])
            label = int(datamodule.labels[split][0])
            axes_item.imshow(image.squeeze(0).numpy(), cmap="gray", vmin=0, vmax=1)
            axes_item.set_title(
                f"{split} set, first image\nlabel {datamodule.class_names[label]}\n"
                f"split shape {tuple(datamodule.images[split].shape)}",
                fontsize=8,
            )
            axes_item.axis("off")
        figure.suptitle(f"{datamodule.folder_name} sample images", fontsize=10)
        save_figure(figure, folder / "sample_images.png")

    def on_test_epoch_start(self) -> None:
        self._test_examples = {}

    def on_test_epoch_end(self) -> None:
        if not self.trainer.is_global_zero or not self._test_examples:
            return
        datamodule = self.trainer.datamodule
        class_names = getattr(datamodule, "class_names", None)
        unnormalize = getattr(datamodule, "unnormalize", lambda images: images)
        labels = sorted(self._test_examples)
        figure, axes = plt.subplots(2, len(labels), figsize=(1.3 * len(labels), 3.0), squeeze=False)
        for column, label in enumerate(labels):
            original, reconstruction = self._test_examples[label]
            for row, image in enumerate((original, reconstruction)):
                axes[row][column].imshow(unnormalize(image).squeeze(0).numpy(), cmap="gray", vmin=0, vmax=1)
                axes[row][column].set_xticks([])
                axes[row][column].set_yticks([])
            axes[0][column].set_title(class_names[label] if class_names else str(label), fontsize=8)
        axes[0][0].set_ylabel("original", fontsize=8)
        axes[1][0].set_ylabel("reconstructed", fontsize=8)
        figure.suptitle("Test images and their reconstructions, one per class", fontsize=10)
        save_figure(figure, run_folder(self.trainer) / "reconstructions_test.png")
