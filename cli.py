"""Command line for the project's jobs, built on LightningCLI.

    python cli.py fit --config configs/mnist.yaml      # train, then test and cluster
    python cli.py test --config configs/mnist.yaml --ckpt_path runs/mnist/version_0/checkpoints/<file>.ckpt

Every run writes into a new versioned folder under `runs/<name>/`, so no run overwrites another.
"""

import sys
import warnings
from typing import Optional, Sequence

import lightning as L
from lightning.pytorch.cli import LightningCLI

import datamodules  # noqa: F401  (registers the datamodules for short class names)
import lightning_modules  # noqa: F401  (registers the modules and callbacks)
from datamodules.errors import ConfigError, DataError

SUBCOMMANDS = ("fit", "validate", "test", "predict")

# The datasets are tensors in memory, so worker processes would only add start-up cost.
warnings.filterwarnings("ignore", message=r".*does not have many workers.*")


class ProjectCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument(
            "--test_after_fit",
            type=bool,
            default=True,
            help="after `fit`, run `test` on the best checkpoint in the same run folder "
            "(for the autoencoder this also runs the clustering)",
        )

    def instantiate_classes(self) -> None:
        # jsonargparse wraps errors raised in constructors into a ValueError about union
        # subtypes; show the project's own message instead.
        try:
            super().instantiate_classes()
        except ValueError as error:
            cause = _find_cause(error, (ConfigError, DataError))
            if cause is None:
                raise
            raise cause from None

    def after_fit(self) -> None:
        if not self.config[self.subcommand].get("test_after_fit", False):
            return
        if self.trainer.interrupted:
            return
        checkpoint = self.trainer.checkpoint_callback
        ckpt_path = "best" if checkpoint is not None and checkpoint.best_model_path else None
        self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=ckpt_path)


def _find_cause(error: BaseException, types: tuple) -> Optional[BaseException]:
    while error is not None:
        if isinstance(error, types):
            return error
        error = error.__cause__ or error.__context__
    return None


def check_argument_order(args: Sequence[str]) -> None:
    """Reject `--config` given before the subcommand, which LightningCLI would misread."""
    for position, argument in enumerate(args):
        if argument in SUBCOMMANDS:
            return
        if argument in ("--config", "-c") or argument.startswith("--config="):
            later = next((arg for arg in args[position:] if arg in SUBCOMMANDS), "fit")
            raise ConfigError(
                f"--config must come after the subcommand, e.g. "
                f"`python cli.py {later} --config configs/mnist.yaml`"
            )


def main(args: Optional[Sequence[str]] = None) -> int:
    try:
        check_argument_order(list(sys.argv[1:] if args is None else args))
        ProjectCLI(
            L.LightningModule,
            L.LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            args=None if args is None else list(args),
            save_config_kwargs={"overwrite": False},
        )
    except (ConfigError, DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
