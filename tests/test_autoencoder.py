import pytest
import torch
from lightning.pytorch.utilities.model_summary import ModelSummary

from datamodules import ConfigError
from lightning_modules import AutoencoderModule

MIRRORED_TYPES = {"Conv2d": "ConvTranspose2d", "Flatten": "Unflatten", "Linear": "Linear"}


@pytest.mark.parametrize("latent_dim", [1, 4, 6, 32])
def test_output_shape_and_latent_size(latent_dim):
    model = AutoencoderModule(latent_dim=latent_dim)
    images = torch.randn(5, 1, 28, 28)
    assert model(images).shape == images.shape
    assert model.encoder(images).shape == (5, latent_dim)
    assert model.encode(images).shape == (5, latent_dim)


@pytest.mark.parametrize("latent_dim", [0, -3, 785])
def test_latent_size_out_of_range(latent_dim):
    with pytest.raises(ConfigError, match="latent_dim must be between 1 and 784"):
        AutoencoderModule(latent_dim=latent_dim)


def _structural_rows(summary: ModelSummary, prefix: str) -> list[dict]:
    rows = []
    for name, kind, params, in_size, out_size in zip(
        summary.layer_names, summary.layer_types, summary.param_nums, summary.in_sizes, summary.out_sizes
    ):
        if name.startswith(prefix + ".layers.") and kind in {"Conv2d", "ConvTranspose2d", "Flatten",
                                                            "Unflatten", "Linear", "ZeroPad2d"}:
            rows.append({"type": kind, "params": params, "in": in_size, "out": out_size})
    return rows


def test_model_summary_shows_mirrored_encoder_and_decoder():
    summary = ModelSummary(AutoencoderModule(latent_dim=6), max_depth=-1)
    encoder = _structural_rows(summary, "encoder")
    decoder = _structural_rows(summary, "decoder")
    # ZeroPad2d only restores the row and column the encoder's pool dropped; fold it into
    # the transposed convolution before it.
    folded = []
    for row in decoder:
        if row["type"] == "ZeroPad2d":
            folded[-1] = {**folded[-1], "out": row["out"]}
        else:
            folded.append(row)

    assert [MIRRORED_TYPES[row["type"]] for row in reversed(encoder)] == [row["type"] for row in folded]
    for encoder_row, decoder_row in zip(reversed(encoder), folded):
        assert encoder_row["in"] == decoder_row["out"]
        # A convolution's output is pooled before the next stage, so compare channels only.
        assert encoder_row["out"][1] == decoder_row["in"][1]
        # Same weight shape both ways; only the bias length (output channels) differs.
        encoder_bias = encoder_row["out"][1] if encoder_row["type"] != "Flatten" else 0
        decoder_bias = decoder_row["out"][1] if decoder_row["type"] != "Unflatten" else 0
        assert encoder_row["params"] - encoder_bias == decoder_row["params"] - decoder_bias


def test_model_summary_lists_every_layer():
    text = str(ModelSummary(AutoencoderModule(latent_dim=5), max_depth=-1))
    for expected in ("encoder.layers.0", "MaxPool2d", "Flatten", "Unflatten", "ConvTranspose2d",
                     "ZeroPad2d", "[1, 5]"):
        assert expected in text


def test_training_step_reduces_loss_on_real_images():
    from datamodules import MNISTDataModule
    from tests.conftest import DATA_DIR

    torch.manual_seed(0)
    datamodule = MNISTDataModule(data_dir=str(DATA_DIR), train_subset=512, test_subset=100)
    datamodule.setup("fit")
    images = datamodule.images["train"][:256]
    model = AutoencoderModule(latent_dim=6)
    optimizer = model.configure_optimizers()
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.mse_loss(model(images), images)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    assert losses[-1] < 0.8 * losses[0]


@pytest.mark.parametrize("channels", [(8,), (8, 16), (8, 16, 32, 64)])
def test_any_stage_count_keeps_image_shape(channels):
    model = AutoencoderModule(latent_dim=4, channels=channels)
    images = torch.randn(3, 1, 28, 28)
    assert model(images).shape == images.shape


def test_channels_last_gives_same_outputs_and_gradients():
    torch.manual_seed(0)
    contiguous = AutoencoderModule(channels_last=False)
    nhwc = AutoencoderModule(channels_last=True)
    nhwc.load_state_dict(contiguous.state_dict())
    assert nhwc.encoder.layers[0].weight.is_contiguous(memory_format=torch.channels_last)
    images = torch.randn(16, 1, 28, 28)
    for model in (contiguous, nhwc):
        torch.nn.functional.mse_loss(model(images), images).backward()
    assert torch.allclose(contiguous(images), nhwc(images), atol=1e-5)
    for first, second in zip(contiguous.parameters(), nhwc.parameters()):
        assert torch.allclose(first.grad, second.grad, atol=1e-5)
