"""Measuring a hand-sign generator with a classifier trained on the real training split.

Inception weights cannot be downloaded on the project's machines, so FID and KID use the
penultimate features of a small CNN trained on the real training images instead. The
numbers are therefore comparable between runs on the same data setting only, not with
published FID values. The real training images scored against the same validation images
give the floor: what a generator that reproduced the training set would reach.
"""

import hashlib
import json
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
# Imported from the submodules because the package re-exports them only when torch-fidelity
# is installed, which a custom feature module does not need.
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from analysis.io import write_json

FEATURES = 64
# A class's generated images closer together than this share of the real images' mean
# pairwise distance count as collapsed.
COLLAPSE_DISTANCE_RATIO = 0.5
# The classifier putting this share of all generated images into one class counts as collapse.
COLLAPSE_CLASS_SHARE = 0.9


class HandSignClassifier(nn.Module):
    """Three conv blocks, global average pooling, a 64-feature layer and the class logits."""

    def __init__(self, num_classes: int, channels: int = 3) -> None:
        super().__init__()
        blocks = []
        width_in = channels
        for width in (32, 64, 128):
            blocks += [
                nn.Conv2d(width_in, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.Conv2d(width, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            width_in = width
        self.body = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.penultimate = nn.Sequential(nn.Linear(128, FEATURES), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(FEATURES, num_classes))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.penultimate(self.body(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


class ClassifierFeatures(nn.Module):
    """The classifier's penultimate features, as torchmetrics' FID/KID `feature` module."""

    num_features = FEATURES

    def __init__(self, classifier: HandSignClassifier) -> None:
        super().__init__()
        self.classifier = classifier.eval()
        for parameter in self.classifier.parameters():
            parameter.requires_grad_(False)

    def train(self, mode: bool = True) -> "ClassifierFeatures":
        # Stays in eval mode so that BatchNorm uses its running statistics and dropout is off.
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier.features(images.float())


def _shift(images: torch.Tensor, generator: torch.Generator, pad: int = 3) -> torch.Tensor:
    """Random translation by up to `pad` pixels, one offset per batch (cheap on CPU)."""
    size = images.shape[-1]
    padded = F.pad(images, (pad, pad, pad, pad), mode="replicate")
    top, left = torch.randint(0, 2 * pad + 1, (2,), generator=generator).tolist()
    return padded[:, :, top : top + size, left : left + size]


@torch.no_grad()
def predict(classifier: nn.Module, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    classifier.eval()
    return torch.cat([classifier(images[start : start + batch_size]).argmax(1) for start in range(0, len(images), batch_size)])


def train_classifier(
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    val_images: torch.Tensor,
    val_labels: torch.Tensor,
    num_classes: int,
    epochs: int = 15,
    seed: int = 0,
    batch_size: int = 64,
) -> tuple[HandSignClassifier, float]:
    """Train the classifier on real training images; return it and its validation accuracy."""
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = HandSignClassifier(num_classes, train_images.shape[1])
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    steps_per_epoch = max(1, (len(train_images) + batch_size - 1) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=epochs * steps_per_epoch)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(train_images), generator=generator)
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            if len(index) < 2:
                continue
            logits = model(_shift(train_images[index], generator))
            loss = F.cross_entropy(logits, train_labels[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    accuracy = float((predict(model, val_images) == val_labels).float().mean())
    return model.eval(), accuracy


def classifier_key(datamodule, epochs: int, seed: int) -> str:
    """Return a hash of everything the classifier depends on: files, classes, image shape, budget."""
    description = {
        "train_files": datamodule.files["train"],
        "val_files": datamodule.files["val"],
        "classes": list(datamodule.class_names),
        "shape": list(datamodule.images["train"].shape[1:]),
        "epochs": epochs,
        "seed": seed,
    }
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:16]


def load_or_train_classifier(
    datamodule, classifier_dir: Path, epochs: int = 15, seed: int = 0
) -> tuple[HandSignClassifier, dict]:
    """Load the classifier for this data setting from `classifier_dir`, training it once if absent.

    The datamodule must be set up. Returns the classifier (eval mode) and its description.
    """
    key = classifier_key(datamodule, epochs, seed)
    path = Path(classifier_dir) / f"classifier_{key}.pt"
    if path.exists():
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        info = json.loads(checkpoint["info"])
        model = HandSignClassifier(len(info["classes"]), info["channels"])
        model.load_state_dict(checkpoint["state_dict"])
        return model.eval(), {**info, "checkpoint": str(path), "loaded": True}

    # Lightning runs test hooks under inference mode, in which nothing can be trained.
    with torch.inference_mode(False), torch.enable_grad():
        model, accuracy = train_classifier(
            datamodule.images["train"],
            datamodule.labels["train"],
            datamodule.images["val"],
            datamodule.labels["val"],
            len(datamodule.class_names),
            epochs=epochs,
            seed=seed,
        )
    info = {
        "classes": list(datamodule.class_names),
        "channels": int(datamodule.images["train"].shape[1]),
        "image_size": int(datamodule.images["train"].shape[-1]),
        "epochs": epochs,
        "seed": seed,
        "train_images": len(datamodule.images["train"]),
        "val_images": len(datamodule.images["val"]),
        "val_accuracy": accuracy,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save({"state_dict": model.state_dict(), "info": json.dumps(info)}, partial)
    partial.replace(path)
    write_json(info, path.with_suffix(".json"))
    if accuracy < 0.95:
        warnings.warn(
            f"the evaluation classifier reaches only {accuracy:.1%} validation accuracy (aim: 95%); "
            f"its accuracy on generated images and its FID/KID are less trustworthy. "
            f"Raise classifier_epochs or use more images per class",
            stacklevel=2,
        )
    return model, {**info, "checkpoint": str(path), "loaded": False}


def mean_pairwise_distance(images: torch.Tensor, limit: int = 200) -> float:
    """Return the mean L2 distance between all pairs of the first `limit` images (pixels in [-1, 1])."""
    flat = images[:limit].flatten(1).float()
    if len(flat) < 2:
        return float("nan")
    return float(torch.pdist(flat).mean())


def score_images(
    classifier: HandSignClassifier,
    images: torch.Tensor,
    labels: torch.Tensor,
    reference: torch.Tensor,
    class_names: list[str],
    seed: int = 0,
) -> dict:
    """Compute classifier accuracy per class, predicted class shares, and FID/KID against `reference`.

    NOTE: the real reference is small (155 validation images for five classes), so FID is biased
    upward and KID is noisy, even slightly negative for near-identical sets. Compare values only
    between runs with the same image counts.
    """
    predicted = predict(classifier, images)
    per_class = {
        name: float((predicted[labels == label] == label).float().mean()) if (labels == label).any() else float("nan")
        for label, name in enumerate(class_names)
    }
    shares = {name: float((predicted == label).float().mean()) for label, name in enumerate(class_names)}
    features = ClassifierFeatures(classifier)
    # Only rank zero evaluates, so compute() must not wait for the other processes under DDP.
    fid = FrechetInceptionDistance(feature=features, reset_real_features=False, sync_on_compute=False)
    subset_size = min(100, len(reference), len(images))
    kid = KernelInceptionDistance(
        feature=features, subsets=50, subset_size=subset_size, reset_real_features=False, sync_on_compute=False
    )
    for metric in (fid, kid):
        metric.update(reference, real=True)
        metric.update(images, real=False)
    with torch.random.fork_rng():
        torch.manual_seed(seed)  # KID draws random subsets
        kid_mean, kid_std = kid.compute()
    return {
        "images": len(images),
        "classifier_accuracy": float((predicted == labels).float().mean()),
        "classifier_accuracy_per_class": per_class,
        "predicted_class_share": shares,
        "fid": float(fid.compute()),
        "kid_mean": float(kid_mean),
        "kid_std": float(kid_std),
        "kid_subset_size": subset_size,
    }


def diversity_check(generated: torch.Tensor, real_images: torch.Tensor, real_labels: torch.Tensor,
                    predicted_share: dict, class_names: list[str]) -> dict:
    """Compare each class's spread with the real images' and look for one dominant class."""
    per_class = {}
    messages = []
    for label, name in enumerate(class_names):
        generated_distance = mean_pairwise_distance(generated[label])
        real_distance = mean_pairwise_distance(real_images[real_labels == label])
        ratio = generated_distance / real_distance if real_distance > 0 else float("nan")
        per_class[name] = {
            "generated_mean_distance": generated_distance,
            "real_mean_distance": real_distance,
            "ratio": ratio,
        }
        if ratio < COLLAPSE_DISTANCE_RATIO:
            messages.append(
                f"class {name}: generated images are {ratio:.2f}x as far apart as real ones "
                f"(below {COLLAPSE_DISTANCE_RATIO}); the generator may have collapsed to a few images"
            )
    dominant = max(predicted_share, key=predicted_share.get)
    if len(class_names) > 1 and predicted_share[dominant] >= COLLAPSE_CLASS_SHARE:
        messages.append(
            f"the classifier puts {predicted_share[dominant]:.0%} of all generated images into class "
            f"{dominant}; the generator may ignore its class input"
        )
    for message in messages:
        warnings.warn(f"diversity check: {message}", stacklevel=2)
    return {
        "per_class": per_class,
        "largest_predicted_class_share": {"class": dominant, "share": predicted_share[dominant]},
        "warnings": messages,
    }


def evaluate_generator(
    generated: torch.Tensor,
    datamodule,
    classifier_dir: Path,
    classifier_epochs: int = 15,
    seed: int = 0,
    real_floor: bool = True,
) -> dict:
    """Compute all test metrics for `generated` images (classes, per class, C, H, W) in [-1, 1]."""
    classifier, classifier_info = load_or_train_classifier(datamodule, classifier_dir, classifier_epochs, seed)
    class_names = list(datamodule.class_names)
    if generated.shape[0] != len(class_names):
        raise ValueError(
            f"generated images cover {generated.shape[0]} classes but the data has {len(class_names)}"
        )
    labels = torch.arange(len(class_names)).repeat_interleave(generated.shape[1])
    reference = datamodule.images["val"]
    generated_scores = score_images(classifier, generated.flatten(0, 1), labels, reference, class_names, seed)
    report = {
        "classifier": classifier_info,
        "reference": f"real validation images ({len(reference)})",
        "generated": generated_scores,
        "diversity": diversity_check(
            generated,
            datamodule.images["train"],
            datamodule.labels["train"],
            generated_scores["predicted_class_share"],
            class_names,
        ),
    }
    if real_floor:
        report["real_train"] = score_images(
            classifier, datamodule.images["train"], datamodule.labels["train"], reference, class_names, seed
        )
    return report


def ensure_classifier(data_args: dict, classifier_dir: str, epochs: int, seed: int) -> dict:
    """Train (or find) the classifier for a datamodule configuration; used before a comparison."""
    from datamodules.hand_sign import HandSignDataModule  # noqa: PLC0415

    datamodule = HandSignDataModule(**data_args)
    datamodule.setup("fit")
    _, info = load_or_train_classifier(datamodule, Path(classifier_dir), epochs, seed)
    return info
