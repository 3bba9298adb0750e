"""Differentiable augmentation for the discriminator's inputs.

With under a thousand training photos the discriminator soon memorizes them. Augmenting every
image it receives, real and generated alike, with the same kind of random transforms makes
memorizing harder. The transforms are plain tensor operations, so the generator still receives
gradients through them. Augmenting only the real images would instead teach the generator to
draw the augmentations.

Each transform draws its own parameters per image. Images are expected in [-1, 1]; the
transforms may leave that range, as the discriminator does not need it.
"""

import torch
import torch.nn.functional as F

TRANSFORMS = ("color", "translation", "cutout")


def parse_policy(policy: str) -> tuple[str, ...]:
    """Split a policy such as "color,translation" into known transform names, in order."""
    names = tuple(name.strip() for name in policy.split(",") if name.strip())
    unknown = [name for name in names if name not in TRANSFORMS]
    if unknown:
        raise ValueError(f"unknown transform(s) {unknown}, expected names from {list(TRANSFORMS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"transform listed twice in {policy!r}")
    return names


def random_color(images: torch.Tensor) -> torch.Tensor:
    """Change brightness, saturation and contrast by a random amount per image."""
    count = images.shape[0]
    shape = (count, 1, 1, 1)
    images = images + (torch.rand(shape, device=images.device, dtype=images.dtype) - 0.5)
    gray = images.mean(dim=1, keepdim=True)
    images = gray + (images - gray) * (2.0 * torch.rand(shape, device=images.device, dtype=images.dtype))
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    return mean + (images - mean) * (torch.rand(shape, device=images.device, dtype=images.dtype) + 0.5)


def random_translation(images: torch.Tensor, fraction: float = 0.125) -> torch.Tensor:
    """Shift each image by up to `fraction` of its size in x and y, filling with zeros."""
    count, _, height, width = images.shape
    max_y, max_x = int(height * fraction + 0.5), int(width * fraction + 0.5)
    if max_x == 0 and max_y == 0:
        return images
    shift_y = torch.randint(-max_y, max_y + 1, (count, 1), device=images.device)
    shift_x = torch.randint(-max_x, max_x + 1, (count, 1), device=images.device)
    padded = F.pad(images, (max_x, max_x, max_y, max_y))
    # Row and column of the padded image that each output pixel reads.
    rows = torch.arange(height, device=images.device)[None, :] + max_y - shift_y
    columns = torch.arange(width, device=images.device)[None, :] + max_x - shift_x
    batch = torch.arange(count, device=images.device)[:, None, None]
    picked = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], columns[:, None, :]]
    return picked.permute(0, 3, 1, 2)


def random_cutout(images: torch.Tensor, fraction: float = 0.5) -> torch.Tensor:
    """Set one square of `fraction` of the image size to zero, at a random place in each image."""
    count, _, height, width = images.shape
    size_y, size_x = int(height * fraction + 0.5), int(width * fraction + 0.5)
    # The square's center may lie anywhere, so parts of it can fall outside the image.
    center_y = torch.randint(0, height, (count, 1, 1), device=images.device)
    center_x = torch.randint(0, width, (count, 1, 1), device=images.device)
    rows = torch.arange(height, device=images.device)[None, :, None]
    columns = torch.arange(width, device=images.device)[None, None, :]
    inside = (
        (rows >= center_y - size_y // 2)
        & (rows < center_y - size_y // 2 + size_y)
        & (columns >= center_x - size_x // 2)
        & (columns < center_x - size_x // 2 + size_x)
    )
    return images * (~inside).unsqueeze(1).to(images.dtype)


_FUNCTIONS = {"color": random_color, "translation": random_translation, "cutout": random_cutout}


def diff_augment(images: torch.Tensor, transforms: tuple[str, ...]) -> torch.Tensor:
    """Apply the named transforms in order; an empty tuple returns the images unchanged."""
    for name in transforms:
        images = _FUNCTIONS[name](images)
    return images
