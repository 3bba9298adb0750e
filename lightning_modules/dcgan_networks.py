"""Class-conditional DCGAN generator and discriminator for 32x32 or 64x64 images."""

import math

import torch
from torch import nn

SUPPORTED_IMAGE_SIZES = (32, 64)


def _stride_two_layers(image_size: int) -> int:
    """Number of 4x4/stride-2 layers between 4x4 feature maps and the image."""
    if image_size not in SUPPORTED_IMAGE_SIZES:
        raise ValueError(f"image_size must be one of {SUPPORTED_IMAGE_SIZES}, got {image_size}")
    return int(math.log2(image_size)) - 2


def init_dcgan_weights(module: nn.Module) -> None:
    """DCGAN initialization: convolutions N(0, 0.02); BatchNorm scale N(1, 0.02) and shift 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class Generator(nn.Module):
    """Noise and class label to an image in [-1, 1].

    The class embedding is concatenated to the noise vector, then transposed convolutions
    grow a 4x4 map to the image size, halving the channels at each step.
    """

    def __init__(
        self,
        latent_dim: int,
        num_classes: int,
        image_size: int,
        channels: int,
        width: int = 64,
        embedding_dim: int = 32,
    ) -> None:
        super().__init__()
        steps = _stride_two_layers(image_size)
        self.latent_dim = latent_dim
        self.embedding = nn.Embedding(num_classes, embedding_dim)
        features = width * 2 ** (steps - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim + embedding_dim, features, 4, 1, 0, bias=False),
            nn.BatchNorm2d(features),
            nn.ReLU(inplace=True),
        ]
        for _ in range(steps - 1):
            layers += [
                nn.ConvTranspose2d(features, features // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(features // 2),
                nn.ReLU(inplace=True),
            ]
            features //= 2
        layers += [nn.ConvTranspose2d(features, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(init_dcgan_weights)

    def forward(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        code = torch.cat([noise, self.embedding(labels)], dim=1)
        return self.net(code[:, :, None, None])


class Discriminator(nn.Module):
    """Image and class label to one real/fake logit per image.

    The label enters as an extra input channel: a learned image-sized map per class. Strided
    convolutions shrink the image to 4x4; the input layer has no BatchNorm (as in DCGAN).
    """

    def __init__(self, num_classes: int, image_size: int, channels: int, width: int = 64) -> None:
        super().__init__()
        steps = _stride_two_layers(image_size)
        self.image_size = image_size
        self.label_map = nn.Embedding(num_classes, image_size * image_size)
        layers: list[nn.Module] = [
            nn.Conv2d(channels + 1, width, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        features = width
        for _ in range(steps - 1):
            layers += [
                nn.Conv2d(features, features * 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(features * 2),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            features *= 2
        layers.append(nn.Conv2d(features, 1, 4, 1, 0, bias=False))
        self.net = nn.Sequential(*layers)
        self.apply(init_dcgan_weights)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        label_channel = self.label_map(labels).view(-1, 1, self.image_size, self.image_size)
        return self.net(torch.cat([images, label_channel], dim=1)).view(-1)
