"""After testing, cluster the encoder's latent vectors of every image and write the results."""

import time
from typing import Optional

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info

from analysis.clustering import discover_labels, validate_k_range
from analysis.io import write_json
from datamodules.errors import ConfigError
from datamodules.mnist import SPLITS
from lightning_modules.run_folder import run_folder


class LatentClustering(L.Callback):
    """Run label discovery on train + validation + test latents when `test` ends.

    Writes `metrics.json` last, so a run folder that has it contains every other result too.

    Args:
        k_min: smallest number of KMeans clusters tried.
        k_max: largest number of KMeans clusters tried.
        n_init: KMeans restarts per k; the best of them is kept.
        seed: KMeans `random_state` and the seed of silhouette sampling.
        silhouette_sample_size: compute silhouette scores on this many random points instead of
            all of them (faster, approximate). None means exact, on all points.
        silhouette_device: where the silhouette distances are computed; "auto" uses the model's device.
    """

    def __init__(
        self,
        k_min: int = 5,
        k_max: int = 15,
        n_init: int = 10,
        seed: int = 42,
        silhouette_sample_size: Optional[int] = None,
        silhouette_device: str = "auto",
    ) -> None:
        try:
            validate_k_range(k_min, k_max)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        if n_init < 1:
            raise ConfigError(f"n_init must be at least 1, got {n_init}")
        if silhouette_sample_size is not None and silhouette_sample_size < 2:
            raise ConfigError(f"silhouette_sample_size must be at least 2, got {silhouette_sample_size}")
        self.k_min, self.k_max = k_min, k_max
        self.n_init = n_init
        self.seed = seed
        self.silhouette_sample_size = silhouette_sample_size
        self.silhouette_device = silhouette_device
        self.timings: dict[str, float] = {}
        self._started = 0.0

    def setup(self, trainer: "L.Trainer", pl_module: "L.LightningModule", stage: str) -> None:
        datamodule = trainer.datamodule
        if datamodule is None or not hasattr(datamodule, "images"):
            raise ConfigError("LatentClustering needs an MNIST or Fashion-MNIST datamodule")
        datamodule.setup(stage)
        n_samples = sum(len(datamodule.images[split]) for split in SPLITS)
        if self.silhouette_sample_size is not None:
            n_samples = min(n_samples, self.silhouette_sample_size)
        try:
            validate_k_range(self.k_min, self.k_max, n_samples)
        except ValueError as error:
            raise ConfigError(str(error)) from None

    def on_fit_start(self, trainer, pl_module) -> None:
        self._started = time.perf_counter()

    def on_fit_end(self, trainer, pl_module) -> None:
        self.timings["fit_s"] = time.perf_counter() - self._started

    def on_test_start(self, trainer, pl_module) -> None:
        self._started = time.perf_counter()

    def on_test_end(self, trainer: "L.Trainer", pl_module: "L.LightningModule") -> None:
        self.timings["test_s"] = time.perf_counter() - self._started
        if trainer.is_global_zero:
            self._cluster(trainer, pl_module)
        # Other processes wait, so none exits while rank zero still writes the results.
        trainer.strategy.barrier("latent_clustering")

    def _cluster(self, trainer: "L.Trainer", pl_module: "L.LightningModule") -> None:
        started = time.perf_counter()
        datamodule = trainer.datamodule
        folder = run_folder(trainer)
        latents = np.concatenate([pl_module.encode(datamodule.images[split]) for split in SPLITS])
        labels = np.concatenate([datamodule.labels[split].numpy() for split in SPLITS])
        splits = np.concatenate([np.full(len(datamodule.images[split]), split) for split in SPLITS])
        file_indices = np.concatenate([datamodule.file_indices[split] for split in SPLITS])
        rank_zero_info(
            f"Clustering {len(latents)} latent vectors with KMeans for k = {self.k_min}..{self.k_max} "
            f"and choosing k by silhouette score"
        )
        device = str(pl_module.device) if self.silhouette_device == "auto" else self.silhouette_device
        clustering = discover_labels(
            latents,
            labels,
            splits,
            file_indices,
            datamodule.class_names,
            folder,
            dataset=datamodule.folder_name,
            k_min=self.k_min,
            k_max=self.k_max,
            n_init=self.n_init,
            seed=self.seed,
            silhouette_sample_size=self.silhouette_sample_size,
            device=device,
        )
        self.timings["clustering_s"] = time.perf_counter() - started
        test_metrics = {
            key.split("/", 1)[1]: float(value)
            for key, value in trainer.callback_metrics.items()
            if key.startswith("test/") and isinstance(value, (torch.Tensor, float))
        }
        metrics = {
            "dataset": datamodule.folder_name,
            "data": datamodule.describe(),
            "test": test_metrics,
            "clustering": clustering,
            "wall_time_s": dict(self.timings),
            "torch_threads": torch.get_num_threads(),
        }
        write_json(metrics, folder / "metrics.json")
        at_classes = clustering[f"at_k_{len(datamodule.class_names)}"]
        rank_zero_info(
            f"best k = {clustering['best_k']} (purity {clustering['purity_at_best_k']:.3f}); "
            f"at k = {len(datamodule.class_names)}: ACC {at_classes['acc_hungarian']:.3f}, "
            f"NMI {at_classes['nmi']:.3f}, ARI {at_classes['ari']:.3f}. Results in {folder}"
        )
