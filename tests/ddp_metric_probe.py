"""Fit a tiny module on 2 CPU processes, each logging its own value, and save what was logged.

Run by tests/test_ddp.py as `python tests/ddp_metric_probe.py OUTPUT.json`; it logs the way the
project's modules do (`sync_dist=True` epoch means), so the test checks that reduction.
"""

import json
import sys

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset


class RankValues(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch, batch_idx):
        accuracy = 0.75 if self.global_rank == 0 else 0.25
        self.log("probe/loss", 1.0, on_step=False, on_epoch=True, sync_dist=True)
        self.log("probe/accuracy", accuracy, on_step=False, on_epoch=True, sync_dist=True)
        return (self.weight * batch[0]).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return DataLoader(TensorDataset(torch.ones(8, 1)), batch_size=2)


if __name__ == "__main__":
    trainer = L.Trainer(
        accelerator="cpu", devices=2, strategy="ddp", max_epochs=1,
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )
    trainer.fit(RankValues())
    if trainer.is_global_zero:
        with open(sys.argv[1], "w") as handle:
            json.dump({key: float(value) for key, value in trainer.callback_metrics.items()}, handle)
