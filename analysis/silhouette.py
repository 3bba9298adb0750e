"""Exact silhouette scores for many clusterings of the same points in one pass over the distances.

scikit-learn's `silhouette_score` recomputes all pairwise distances for every labelling. The
distances do not depend on the labelling, so this module computes them once, block by block,
and for each block multiplies them with the stacked one-hot assignments of every labelling.
That gives, for every point and every labelling, the summed distance to each cluster, from
which a(i), b(i) and s(i) follow exactly as in scikit-learn.
"""

import warnings
from typing import Optional, Sequence

import numpy as np
import torch


def _augment(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # |x - y|^2 = |x|^2 + |y|^2 - 2 x.y as one matrix product of augmented rows.
    squared_norms = (points * points).sum(dim=1, keepdim=True)
    ones = torch.ones_like(squared_norms)
    left = torch.cat([-2.0 * points, squared_norms, ones], dim=1)
    right = torch.cat([points, ones, squared_norms], dim=1)
    return left, right


def silhouette_scores(
    points: np.ndarray | torch.Tensor,
    labellings: Sequence[np.ndarray],
    block_size: int = 8192,
    device: str | torch.device = "cpu",
) -> list[float]:
    """Return the mean silhouette coefficient of each labelling of `points` (Euclidean).

    Equal to `sklearn.metrics.silhouette_score(points, labels)` for each labelling, within
    float32 rounding of the distances; sums are kept in float64. A point alone in its cluster
    scores 0, as in scikit-learn. A labelling with fewer than 2 or more than n - 1 distinct
    labels has no silhouette score and gets NaN with a warning.

    Memory is bounded by the block size, not by the number of points: one block of
    `block_size` x `block_size` float32 distances at a time (256 MiB at the default).

    Args:
        points: array of shape (n, d).
        labellings: one integer label array of shape (n,) per clustering.
        block_size: rows and columns of the distance matrix computed at a time.
        device: where the distances are computed ("cpu", "cuda", ...).
    """
    device = torch.device(device)
    points = torch.as_tensor(np.asarray(points), dtype=torch.float32)
    n = points.shape[0]
    if points.ndim != 2:
        raise ValueError(f"points must have shape (n, d), got {tuple(points.shape)}")
    if block_size <= 0:
        raise ValueError(f"block_size must be positive, got {block_size}")

    # Centering changes no distance but shrinks |x|^2, which keeps the expansion accurate.
    points = points.double()
    points = (points - points.mean(dim=0)).float().to(device)

    encoded: list[Optional[np.ndarray]] = []
    cluster_sizes: list[np.ndarray] = []
    offsets: list[int] = []
    total_columns = 0
    for index, labels in enumerate(labellings):
        labels = np.asarray(labels)
        if labels.shape != (n,):
            raise ValueError(f"labelling {index} has shape {labels.shape}, expected ({n},)")
        _, dense = np.unique(labels, return_inverse=True)
        n_labels = int(dense.max()) + 1 if n else 0
        if not 2 <= n_labels <= n - 1:
            warnings.warn(
                f"labelling {index} has {n_labels} distinct labels for {n} points; the silhouette "
                f"score needs between 2 and n - 1, so it is reported as NaN",
                stacklevel=2,
            )
            encoded.append(None)
            cluster_sizes.append(np.zeros(0))
            offsets.append(total_columns)
            continue
        encoded.append(dense)
        cluster_sizes.append(np.bincount(dense, minlength=n_labels).astype(np.float64))
        offsets.append(total_columns)
        total_columns += n_labels

    valid = [index for index, dense in enumerate(encoded) if dense is not None]
    if not valid:
        return [float("nan")] * len(encoded)

    # Column j of `assignments` is 1 for the points in one cluster of one labelling.
    assignments = torch.zeros(n, total_columns, dtype=torch.float32, device=device)
    for index in valid:
        rows = torch.arange(n, device=device)
        columns = torch.as_tensor(encoded[index] + offsets[index], device=device)
        assignments[rows, columns] = 1.0

    left, right = _augment(points)
    cluster_sums = torch.zeros(n, total_columns, dtype=torch.float64, device=device)
    # The distance matrix is symmetric: each off-diagonal block serves its row block and,
    # transposed, its column block, which halves the distance computations.
    starts = list(range(0, n, block_size))
    for row_start in starts:
        row_end = min(row_start + block_size, n)
        for col_start in starts[starts.index(row_start):]:
            col_end = min(col_start + block_size, n)
            distances = left[row_start:row_end] @ right[col_start:col_end].T
            distances.clamp_min_(0.0).sqrt_()
            if row_start == col_start:
                # The expansion leaves rounding noise where the exact distance is 0.
                distances.fill_diagonal_(0.0)
            cluster_sums[row_start:row_end] += (distances @ assignments[col_start:col_end]).double()
            if col_start != row_start:
                cluster_sums[col_start:col_end] += (distances.T @ assignments[row_start:row_end]).double()

    scores: list[float] = []
    for index, dense in enumerate(encoded):
        if dense is None:
            scores.append(float("nan"))
            continue
        sizes = torch.as_tensor(cluster_sizes[index], device=device)
        sums = cluster_sums[:, offsets[index] : offsets[index] + len(sizes)]
        own = torch.as_tensor(dense, device=device)
        own_size = sizes[own]
        rows = torch.arange(n, device=device)
        intra = sums[rows, own] / (own_size - 1).clamp_min(1.0)
        mean_to_cluster = sums / sizes
        mean_to_cluster[rows, own] = float("inf")
        nearest_other = mean_to_cluster.min(dim=1).values
        denominator = torch.maximum(intra, nearest_other)
        coefficient = torch.where(denominator > 0, (nearest_other - intra) / denominator, 0.0)
        coefficient = torch.where(own_size > 1, coefficient, 0.0)
        scores.append(float(coefficient.mean()))
    return scores
