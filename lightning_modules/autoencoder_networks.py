"""Convolutional encoder and decoder for 1x28x28 images; the decoder mirrors the encoder."""

from torch import nn


class ConvEncoder(nn.Module):
    """Map a 1x28x28 image to a latent vector.

    Each stage is a 3x3 convolution (padding keeps the size) and a 2x2 max-pool:
    1x28x28 -> 16x14x14 -> 32x7x7 -> 64x3x3 (the pool floors 7 to 3) -> 576 -> latent.
    """

    def __init__(self, latent_dim: int, channels: tuple[int, ...] = (16, 32, 64)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels, size = 1, 28
        for out_channels in channels:
            layers += [
                nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            in_channels, size = out_channels, size // 2
        layers += [nn.Flatten(), nn.Linear(in_channels * size * size, latent_dim)]
        self.layers = nn.Sequential(*layers)
        self.feature_shape = (in_channels, size, size)

    def forward(self, images):
        return self.layers(images)


class ConvDecoder(nn.Module):
    """Map a latent vector back to a 1x28x28 image, stage by stage in the encoder's reverse order.

    Each 3x3 stride-2 transposed convolution doubles the size and undoes one encoder stage's
    channel change, so its weights have the shape of the matching encoder convolution's.
    Where the encoder's pool dropped a row and column (7 -> 3), a ZeroPad2d adds them back
    (6 -> 7). The output is linear because the images are standardized, not in [0, 1].
    """

    def __init__(self, latent_dim: int, channels: tuple[int, ...] = (16, 32, 64)) -> None:
        super().__init__()
        sizes = [28]
        for _ in channels:
            sizes.append(sizes[-1] // 2)
        deepest = channels[-1]
        layers: list[nn.Module] = [
            nn.Linear(latent_dim, deepest * sizes[-1] * sizes[-1]),
            nn.ReLU(inplace=True),
            nn.Unflatten(1, (deepest, sizes[-1], sizes[-1])),
        ]
        out_channels_by_stage = (1,) + tuple(channels[:-1])
        for stage in reversed(range(len(channels))):
            layers.append(
                nn.ConvTranspose2d(
                    channels[stage],
                    out_channels_by_stage[stage],
                    kernel_size=3,
                    stride=2,
                    padding=1,
                    output_padding=1,
                )
            )
            missing = sizes[stage] - 2 * sizes[stage + 1]
            if missing:
                layers.append(nn.ZeroPad2d((0, missing, 0, missing)))
            if stage > 0:
                layers.append(nn.ReLU(inplace=True))
        self.layers = nn.Sequential(*layers)

    def forward(self, latent):
        return self.layers(latent)
