"""DCGAN networks, targets, instance-noise schedule and one manual-optimization step."""

from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from torch import nn

from datamodules.errors import ConfigError
from datamodules.hand_sign import HandSignDataModule
from lightning_modules.dcgan import (
    DCGANModule,
    discriminator_accuracy,
    discriminator_targets,
    instance_noise_sigma,
)
from lightning_modules.dcgan_networks import Discriminator, Generator

DATA = Path(__file__).resolve().parents[1] / "data" / "sign-language-digits"


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_network_shapes(size, channels):
    generator = Generator(latent_dim=16, num_classes=4, image_size=size, channels=channels, width=8)
    discriminator = Discriminator(num_classes=4, image_size=size, channels=channels, width=8)
    labels = torch.tensor([0, 1, 2, 3, 3])
    images = generator(torch.randn(5, 16), labels)
    assert images.shape == (5, channels, size, size)
    assert images.min() >= -1
    assert images.max() <= 1
    logits = discriminator(images, labels)
    assert logits.shape == (5,)


def test_generator_uses_class():
    generator = Generator(latent_dim=16, num_classes=3, image_size=32, channels=3, width=8).eval()
    noise = torch.randn(2, 16).repeat(3, 1)
    images = generator(noise, torch.tensor([0, 0, 1, 1, 2, 2]))
    assert not torch.allclose(images[0], images[2])
    assert not torch.allclose(images[2], images[4])


def test_weight_init_statistics():
    torch.manual_seed(0)
    networks = [Generator(100, 5, 64, 3, 64), Discriminator(5, 64, 3, 64)]
    conv_weights = torch.cat([
        module.weight.detach().flatten() for network in networks for module in network.modules()
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d))
    ])
    assert abs(conv_weights.mean()) < 1e-3
    assert conv_weights.std() == pytest.approx(0.02, rel=0.02)
    norms = [module for network in networks for module in network.modules() if isinstance(module, nn.BatchNorm2d)]
    scales = torch.cat([module.weight.detach().flatten() for module in norms])
    assert scales.mean() == pytest.approx(1.0, abs=0.005)
    assert scales.std() == pytest.approx(0.02, rel=0.15)
    assert all(torch.count_nonzero(module.bias) == 0 for module in norms)
    # The discriminator's input layer has no BatchNorm right after it.
    first_layers = list(networks[1].net)[:2]
    assert isinstance(first_layers[0], nn.Conv2d)
    assert isinstance(first_layers[1], nn.LeakyReLU)


def test_targets_with_and_without_label_smoothing():
    assert discriminator_targets(0.1) == {"real": 0.9, "fake": 0.0, "generator": 1.0}
    assert discriminator_targets(0.0) == {"real": 1.0, "fake": 0.0, "generator": 1.0}


def test_instance_noise_schedule():
    assert instance_noise_sigma(0.2, 10, 0.0) == pytest.approx(0.2)
    assert instance_noise_sigma(0.2, 10, 5.0) == pytest.approx(0.1)
    assert instance_noise_sigma(0.2, 10, 10.0) == 0.0
    assert instance_noise_sigma(0.2, 10, 25.0) == 0.0
    assert instance_noise_sigma(0.0, 10, 0.0) == 0.0
    values = [instance_noise_sigma(0.2, 10, step / 7) for step in range(200)]
    assert min(values) >= 0.0
    assert all(later <= earlier for earlier, later in zip(values, values[1:]))


def test_sigma_uses_epoch_and_batch():
    module = DCGANModule(instance_noise=0.2, instance_noise_epochs=4)
    # global_step counts two optimizer steps per batch; the schedule must not use it.
    module._trainer = SimpleNamespace(num_training_batches=10, current_epoch=2, global_step=999)
    assert module.current_sigma(batch_idx=0) == pytest.approx(0.1)
    assert module.current_sigma(batch_idx=5) == pytest.approx(0.2 * (1 - 2.5 / 4))


def test_discriminator_accuracy_hand_made_logits():
    accuracy = discriminator_accuracy(torch.tensor([2.0, -1.0, 0.5, 0.0]), torch.tensor([-3.0, 1.0, -0.1]))
    assert accuracy["d_acc_real"] == pytest.approx(0.5)  # a logit of exactly 0 is not "real"
    assert accuracy["d_acc_fake"] == pytest.approx(2 / 3)
    assert accuracy["d_acc"] == pytest.approx(4 / 7)


@pytest.fixture(scope="module")
def tiny_data():
    datamodule = HandSignDataModule(str(DATA), classes=["0", "1"], image_size=32, batch_size=8,
                                    max_images_per_class=12, val_fraction=0.25)
    datamodule.setup("fit")
    return datamodule


def small_module(**overrides):
    options = dict(num_classes=2, image_size=32, latent_dim=8, embedding_dim=4, generator_width=8,
                   discriminator_width=8, sample_every_n_epochs=0)
    options.update(overrides)
    return DCGANModule(**options)


def quiet_trainer(root: Path, **overrides):
    # Without a logger the run folder is default_root_dir, which must not be the repository.
    options = dict(default_root_dir=str(root), max_epochs=1, limit_train_batches=1, limit_val_batches=0, logger=False,
                   enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                   accelerator="cpu", devices=1)
    options.update(overrides)
    return L.Trainer(**options)


class StepCounter(L.Callback):
    def __init__(self):
        self.steps = {}

    def on_train_start(self, trainer, pl_module):
        for name, optimizer in zip(("discriminator", "generator"), trainer.optimizers):
            self.steps[name] = 0
            optimizer.register_step_post_hook(lambda *_, name=name: self.steps.__setitem__(name, self.steps[name] + 1))


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_one_batch_steps_each_optimizer_once(tiny_data, label_smoothing, tmp_path):
    torch.manual_seed(0)
    module = small_module(label_smoothing=label_smoothing)
    seen, seen_grad, targets = [], [], []
    module.discriminator.register_forward_pre_hook(lambda _, inputs: seen.append(inputs[0].detach().clone()) or None)
    module.discriminator.register_forward_pre_hook(
        lambda _, inputs: seen_grad.append(inputs[0].requires_grad) or None
    )
    original_bce = module._bce
    module._bce = lambda logits, target: targets.append(target) or original_bce(logits, target)
    generator_before = [p.detach().clone() for p in module.generator.parameters()]
    counter = StepCounter()
    real_batch = next(iter(tiny_data.train_dataloader()))[0]
    trainer = quiet_trainer(tmp_path, callbacks=[counter])
    torch.manual_seed(1)
    trainer.fit(module, train_dataloaders=tiny_data.train_dataloader())

    assert counter.steps == {"discriminator": 1, "generator": 1}
    assert len(seen) == 3  # real pass, fake pass for D, fake pass for G
    batch = len(real_batch)
    assert [len(images) for images in seen] == [batch, batch, batch]
    # With shuffling seeded the same way the first pass is exactly the real batch.
    torch.manual_seed(1)
    assert torch.equal(seen[0], next(iter(tiny_data.train_dataloader()))[0])
    assert torch.equal(seen[1], seen[2])
    assert not torch.equal(seen[0], seen[1])
    # Fakes are detached for the discriminator step and attached for the generator step.
    assert seen_grad == [False, False, True]
    assert targets == [1.0 - label_smoothing, 0.0, 1.0]
    assert any(not torch.equal(before, after) for before, after in zip(generator_before, module.generator.parameters()))


def test_instance_noise_on_real_and_fake(tiny_data, tmp_path):
    module = small_module(instance_noise=0.5, instance_noise_epochs=3)
    seen = []
    module.discriminator.register_forward_pre_hook(lambda _, inputs: seen.append(inputs[0].detach().clone()) or None)
    torch.manual_seed(1)
    quiet_trainer(tmp_path).fit(module, train_dataloaders=tiny_data.train_dataloader())
    torch.manual_seed(1)
    real = next(iter(tiny_data.train_dataloader()))[0]
    assert (seen[0] - real).std() == pytest.approx(0.5, rel=0.1)
    # The D step and the G step draw their own noise for the same fakes.
    assert (seen[1] - seen[2]).std() == pytest.approx(0.5 * 2**0.5, rel=0.1)


@pytest.mark.parametrize("setting", [{"gradient_clip_val": 1.0}, {"accumulate_grad_batches": 2}])
def test_clipping_and_accumulation_errors(tiny_data, setting, tmp_path):
    name = next(iter(setting))
    with pytest.raises(ConfigError, match=rf"trainer\.{name}=.*Remove"):
        quiet_trainer(tmp_path, **setting).fit(small_module(), train_dataloaders=tiny_data.train_dataloader())


def test_model_and_data_must_agree(tiny_data, tmp_path):
    with pytest.raises(ConfigError, match="model.num_classes=3 does not match the data"):
        quiet_trainer(tmp_path).fit(small_module(num_classes=3), datamodule=tiny_data)


def test_invalid_settings_are_config_errors():
    with pytest.raises(ConfigError, match="label_smoothing"):
        DCGANModule(label_smoothing=0.6)
    with pytest.raises(ConfigError, match="instance_noise_epochs"):
        DCGANModule(instance_noise=0.1, instance_noise_epochs=0)
    with pytest.raises(ConfigError, match="image_size"):
        DCGANModule(image_size=48)


def test_ddp_needs_unused_parameter_detection(tmp_path):
    module = small_module()
    module.trainer = L.Trainer(default_root_dir=str(tmp_path), accelerator="cpu", devices=2, strategy="ddp",
                               logger=False)
    with pytest.raises(ConfigError, match="ddp_find_unused_parameters_true"):
        module.configure_callbacks()
    module.trainer = L.Trainer(default_root_dir=str(tmp_path), accelerator="cpu", devices=2,
                               strategy="ddp_find_unused_parameters_true", logger=False)
    assert len(module.configure_callbacks()) == 1
