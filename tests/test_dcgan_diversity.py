"""Differentiable augmentation of D's inputs and the mode-seeking term of the generator loss."""

from pathlib import Path

import lightning as L
import pytest
import torch

import lightning_modules.dcgan as dcgan
from datamodules.errors import ConfigError
from datamodules.hand_sign import HandSignDataModule
from lightning_modules.dcgan import DCGANModule
from lightning_modules.diff_augment import (
    diff_augment,
    parse_policy,
    random_color,
    random_cutout,
    random_translation,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "sign-language-digits"
ALL = ("color", "translation", "cutout")


@pytest.mark.parametrize("transforms", [(), ("color",), ("translation",), ("cutout",), ALL])
def test_shape_kept_and_gradient_reaches_input(transforms):
    torch.manual_seed(0)
    images = torch.rand(6, 3, 32, 32, requires_grad=True)
    out = diff_augment(images, transforms)
    assert out.shape == images.shape
    out.square().sum().backward()
    assert images.grad is not None
    assert images.grad.abs().sum() > 0


def test_empty_policy_is_identity():
    images = torch.randn(2, 3, 32, 32)
    assert diff_augment(images, parse_policy("")) is images


def test_translation_shift_at_most_four():
    torch.manual_seed(0)
    images = torch.zeros(200, 1, 32, 32)
    images[:, 0, 16, 16] = 1.0
    out = random_translation(images)
    # A dot in the middle cannot leave the image, so each image still contains exactly one.
    assert torch.equal(out.flatten(1).sum(1), torch.ones(200))
    position = out.flatten(1).argmax(1)
    rows, columns = position // 32, position % 32
    assert (rows - 16).abs().max() == 4
    assert (columns - 16).abs().max() == 4
    # Each image draws its own shift.
    assert len(set(zip(rows.tolist(), columns.tolist()))) > 20


def test_cutout_zeroes_one_square():
    torch.manual_seed(0)
    out = random_cutout(torch.ones(100, 3, 32, 32))
    zeros = out[:, 0] == 0
    assert torch.equal(zeros, (out == 0).all(1))  # all channels alike
    counts = zeros.flatten(1).sum(1)
    assert counts.max() == 16 * 16
    assert counts.min() > 0
    for mask in zeros[:10]:
        rows, columns = mask.any(1).nonzero(), mask.any(0).nonzero()
        assert rows.numel() <= 16
        assert columns.numel() <= 16
        # One solid rectangle: its bounding box is fully zero.
        assert mask.sum() == rows.numel() * columns.numel()


def test_color_keeps_the_spatial_pattern():
    torch.manual_seed(0)
    flat = torch.full((50, 3, 8, 8), 0.3)
    out = random_color(flat)
    # A uniform image stays uniform: only its level changes, by a different amount per image.
    assert torch.allclose(out, out[:, :1, :1, :1].expand_as(out), atol=1e-6)
    assert out[:, 0, 0, 0].std() > 0.1


def test_invalid_policy_is_a_config_error():
    with pytest.raises(ConfigError, match=r"augment='color,flip' is not valid.*'flip'"):
        DCGANModule(augment="color,flip")
    with pytest.raises(ConfigError, match="twice"):
        DCGANModule(augment="cutout,cutout")
    assert DCGANModule(augment=" color, cutout ").augment_transforms == ("color", "cutout")


@pytest.fixture(scope="module")
def tiny_data():
    datamodule = HandSignDataModule(str(DATA), classes=["0", "1"], image_size=32, batch_size=8,
                                    max_images_per_class=12, val_fraction=0.25)
    datamodule.setup("fit")
    return datamodule


def small_module(**overrides):
    options = dict(num_classes=2, image_size=32, latent_dim=8, embedding_dim=4, generator_width=8,
                   discriminator_width=8, sample_every_n_epochs=0, augment="color,translation,cutout")
    options.update(overrides)
    return DCGANModule(**options)


def quiet_trainer(root: Path, **overrides):
    options = dict(default_root_dir=str(root), max_epochs=1, limit_train_batches=1, limit_val_batches=0, logger=False,
                   enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                   accelerator="cpu", devices=1)
    options.update(overrides)
    return L.Trainer(**options)


def test_every_training_input_of_d_is_augmented(tiny_data, tmp_path, monkeypatch):
    calls = []

    def recording(images, transforms):
        out = diff_augment(images, transforms)
        calls.append((images.detach().clone(), transforms, out.detach().clone()))
        return out

    monkeypatch.setattr(dcgan, "diff_augment", recording)
    module = small_module()
    seen = []
    module.discriminator.register_forward_pre_hook(lambda _, inputs: seen.append(inputs[0].detach().clone()) or None)
    torch.manual_seed(1)
    quiet_trainer(tmp_path).fit(module, train_dataloaders=tiny_data.train_dataloader())
    torch.manual_seed(1)
    real = next(iter(tiny_data.train_dataloader()))[0]

    # Real pass, fake pass of the D step and fake pass of the G step: the same policy each time.
    assert [transforms for _, transforms, _ in calls] == [ALL, ALL, ALL]
    assert torch.equal(calls[0][0], real)
    assert torch.equal(calls[1][0], calls[2][0])  # the same fakes, detached and attached
    # D receives exactly the augmented images, and each pass draws its own transforms.
    assert len(seen) == 3
    for (_, _, augmented), received in zip(calls, seen):
        assert torch.equal(received, augmented)
    assert not torch.equal(seen[1], seen[2])


def test_generator_gradient_passes_through_the_augmentation():
    torch.manual_seed(0)
    module = small_module()
    labels = torch.tensor([0, 1, 0, 1])
    fake = module.generator(torch.randn(4, 8), labels)
    logits = module.discriminator(module._discriminator_input(fake, sigma=0.0), labels)
    logits.sum().backward()
    gradients = [p.grad for p in module.generator.parameters()]
    assert all(g is not None for g in gradients)
    assert sum(g.abs().sum() for g in gradients) > 0


def test_validation_inputs_are_not_augmented(tiny_data, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(dcgan, "diff_augment", lambda images, transforms: calls.append(1) or images)
    module = small_module()
    seen = []
    module.discriminator.register_forward_pre_hook(lambda _, inputs: seen.append(inputs[0].detach().clone()) or None)
    quiet_trainer(tmp_path, limit_val_batches=1).validate(module, dataloaders=tiny_data.val_dataloader(),
                                                          verbose=False)
    assert calls == []
    real = next(iter(tiny_data.val_dataloader()))[0]
    assert torch.equal(seen[0], real)


class NoiseScale(torch.nn.Module):
    """A stand-in generator: an image that is `weight` times the first noise value, per label."""

    def __init__(self, weight: float) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor(weight))

    def forward(self, noise, labels):
        return (self.weight * noise[:, :1] + labels[:, None].float())[:, :, None, None].expand(-1, 3, 4, 4)


def test_mode_seeking_penalty_punishes_ignored_noise():
    module = small_module(mode_seeking=1.0)
    labels = torch.tensor([0, 1, 0, 1])
    torch.manual_seed(0)
    noise = torch.randn(4, 8)
    module.generator = NoiseScale(0.0)
    ignoring = module._mode_seeking_penalty(module.generator(noise, labels), noise, labels)
    module.generator = NoiseScale(1.0)
    using = module._mode_seeking_penalty(module.generator(noise, labels), noise, labels)
    assert ignoring > 1e4  # 1 / (0 + 1e-5)
    assert using < 20
    using.backward()
    # Lowering the penalty means making the images depend more on the noise.
    assert module.generator.weight.grad < 0


def test_mode_seeking_extra_generator_pass(tiny_data, tmp_path):
    module = small_module(mode_seeking=2.0, augment="")
    generator_labels, d_passes, bce_values = [], [], []
    module.generator.register_forward_pre_hook(lambda _, inputs: generator_labels.append(inputs[1].clone()) or None)
    module.discriminator.register_forward_pre_hook(lambda *_: d_passes.append(1) or None)
    original_bce = module._bce

    def recording_bce(logits, target):
        value = original_bce(logits, target)
        bce_values.append(float(value.detach()))
        return value

    module._bce = recording_bce
    trainer = quiet_trainer(tmp_path)
    torch.manual_seed(1)
    trainer.fit(module, train_dataloaders=tiny_data.train_dataloader())
    # One generator pass for D and G, then a second with the same labels for the penalty.
    assert len(generator_labels) == 2
    assert torch.equal(generator_labels[0], generator_labels[1])
    # D still gets its 3 passes: real, detached fake, fake.
    assert len(d_passes) == 3
    metrics = trainer.callback_metrics
    assert float(metrics["train/g_loss"]) == pytest.approx(bce_values[-1])
    assert float(metrics["train/mode_seeking"]) > 0


def test_negative_mode_seeking_is_a_config_error():
    with pytest.raises(ConfigError, match="mode_seeking must be 0 .* got -1"):
        DCGANModule(mode_seeking=-1)


def test_comparison_rejects_different_remedies():
    import compare_dcgan  # noqa: PLC0415

    configs = {path: compare_dcgan.load_config(path) for path in compare_dcgan.DEFAULT_CONFIGS}
    compare_dcgan.check_same_budget(configs, None)
    # The variants may differ in the stabilization flags only, not in augmentation or mode seeking.
    configs["configs/dcgan_both.yaml"]["model"]["init_args"]["augment"] = "color"
    with pytest.raises(ConfigError, match="model settings other than stabilization"):
        compare_dcgan.check_same_budget(configs, None)
