"""KMeans over latent vectors, choice of k by silhouette, and how clusters match true labels."""

import math
import time
import warnings
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from analysis.figures import plt, save_figure
from analysis.io import write_csv
from analysis.silhouette import silhouette_scores


def validate_k_range(k_min: int, k_max: int, n_samples: Optional[int] = None) -> None:
    """Raise ValueError unless 2 <= k_min <= k_max < n_samples."""
    if k_min < 2:
        raise ValueError(f"k_min must be at least 2 (a silhouette needs two clusters), got {k_min}")
    if k_max < k_min:
        raise ValueError(f"k_max ({k_max}) must not be smaller than k_min ({k_min})")
    if n_samples is not None and k_max >= n_samples:
        raise ValueError(
            f"k_max ({k_max}) must be smaller than the number of samples clustered ({n_samples})"
        )


def kmeans_sweep(
    latents: np.ndarray, k_values: Sequence[int], n_init: int, seed: int
) -> dict[int, np.ndarray]:
    """Return the KMeans cluster index of every point for each k."""
    return {
        k: KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit_predict(latents)
        for k in k_values
    }


def silhouette_by_k(
    latents: np.ndarray,
    clusters_by_k: dict[int, np.ndarray],
    sample_size: Optional[int] = None,
    seed: int = 0,
    device: str = "cpu",
) -> dict[int, float]:
    """Return the silhouette score for each k, exact on all points unless `sample_size` is set.

    A clustering that uses fewer distinct clusters than its k is marked invalid (NaN) with a
    warning, because its k was not really tested.
    """
    k_values = list(clusters_by_k)
    index = np.arange(len(latents))
    if sample_size is not None and sample_size < len(latents):
        index = np.sort(np.random.default_rng(seed).choice(len(latents), sample_size, replace=False))
    labellings = [clusters_by_k[k][index] for k in k_values]
    scores = silhouette_scores(latents[index], labellings, device=device)
    result = {}
    for k, labels, score in zip(k_values, labellings, scores):
        distinct = len(np.unique(labels))
        if distinct < k:
            warnings.warn(
                f"KMeans with k={k} produced only {distinct} distinct clusters; its silhouette "
                f"score is marked invalid (NaN)",
                stacklevel=2,
            )
            score = float("nan")
        result[k] = score
    return result


def best_k(scores: dict[int, float]) -> int:
    """Return the k with the highest valid silhouette score."""
    valid = {k: score for k, score in scores.items() if not math.isnan(score)}
    if not valid:
        raise ValueError("no k in the sweep has a valid silhouette score")
    return max(valid, key=valid.get)


def label_counts(clusters: np.ndarray, labels: np.ndarray, n_clusters: int, n_classes: int) -> np.ndarray:
    """Return a (n_clusters, n_classes) matrix: how many points of each true label each cluster holds."""
    counts = np.zeros((n_clusters, n_classes), dtype=np.int64)
    np.add.at(counts, (clusters, labels), 1)
    return counts


def dominant_labels(counts: np.ndarray, class_names: Sequence[str]) -> list[dict]:
    """Return one row per cluster: its size, its most frequent true label and that label's share."""
    rows = []
    for cluster, row in enumerate(counts):
        size = int(row.sum())
        label = int(row.argmax())
        rows.append(
            {
                "cluster": cluster,
                "size": size,
                "dominant_label": label,
                "dominant_name": class_names[label],
                "dominant_count": int(row[label]),
                "dominant_share": float(row[label] / size) if size else 0.0,
            }
        )
    return rows


def purity(counts: np.ndarray) -> float:
    """Share of points whose cluster's dominant label is their own label."""
    return float(counts.max(axis=1).sum() / counts.sum())


def hungarian_accuracy(labels: np.ndarray, clusters: np.ndarray) -> float:
    """Clustering accuracy under the best one-to-one matching of clusters to labels."""
    n_clusters = int(clusters.max()) + 1
    n_classes = int(labels.max()) + 1
    counts = label_counts(clusters, labels, n_clusters, n_classes)
    rows, columns = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, columns].sum() / len(labels))


def plot_silhouette(scores: dict[int, float], chosen_k: int, dataset: str, path: Path) -> Path:
    figure, axes = plt.subplots(figsize=(6, 4))
    k_values = list(scores)
    axes.plot(k_values, [scores[k] for k in k_values], marker="o")
    axes.scatter([chosen_k], [scores[chosen_k]], s=120, facecolors="none", edgecolors="red",
                 label=f"best k = {chosen_k}")
    axes.set_xticks(k_values)
    axes.set_xlabel("k (number of KMeans clusters)")
    axes.set_ylabel("silhouette score")
    axes.set_title(f"{dataset}: silhouette of KMeans on the autoencoder latents")
    axes.grid(alpha=0.3)
    axes.legend()
    return save_figure(figure, path)


def plot_cluster_bars(counts: np.ndarray, class_names: Sequence[str], dataset: str, path: Path) -> Path:
    """Draw one bar chart per cluster: count of each true label, labelled with its percentage."""
    n_clusters, n_classes = counts.shape
    columns = min(4, n_clusters)
    rows = math.ceil(n_clusters / columns)
    figure, axes_grid = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), squeeze=False)
    positions = np.arange(n_classes)
    for cluster in range(rows * columns):
        axes = axes_grid[cluster // columns][cluster % columns]
        if cluster >= n_clusters:
            axes.axis("off")
            continue
        row = counts[cluster]
        size = row.sum()
        shares = row / size * 100 if size else np.zeros_like(row, dtype=float)
        dominant = int(row.argmax())
        colors = ["tab:red" if label == dominant else "tab:blue" for label in range(n_classes)]
        axes.bar(positions, row, color=colors)
        for position, count, share in zip(positions, row, shares):
            if count:
                axes.text(position, count, f"{share:.0f}%", ha="center", va="bottom", fontsize=7)
        axes.set_xticks(positions)
        axes.set_xticklabels([str(label) for label in range(n_classes)], fontsize=8)
        axes.set_title(
            f"cluster {cluster}: {size} images\nmostly {class_names[dominant]} ({shares[dominant]:.1f}%)",
            fontsize=9,
        )
        axes.set_ylim(0, max(1, row.max()) * 1.18)
        axes.tick_params(axis="y", labelsize=7)
    figure.suptitle(f"{dataset}: true labels in each of the {n_clusters} clusters (count and share)")
    figure.supxlabel("true label")
    figure.supylabel("images")
    figure.tight_layout()
    return save_figure(figure, path)


def discover_labels(
    latents: np.ndarray,
    labels: np.ndarray,
    splits: np.ndarray,
    file_indices: np.ndarray,
    class_names: Sequence[str],
    out_dir: Path,
    dataset: str,
    k_min: int = 5,
    k_max: int = 15,
    n_init: int = 10,
    seed: int = 42,
    silhouette_sample_size: Optional[int] = None,
    device: str = "cpu",
) -> dict:
    """Cluster the latent vectors for every k, choose k by silhouette and write the results.

    Writes into `out_dir`: the silhouette-vs-k plot, the per-cluster label bar charts and the
    cluster-to-label table at the best k, the pseudo-label CSV, and returns the metrics.
    """
    out_dir = Path(out_dir)
    n_samples = len(latents)
    validate_k_range(k_min, k_max, n_samples)
    n_classes = len(class_names)
    k_values = list(range(k_min, k_max + 1))
    timings = {}

    start = time.perf_counter()
    clusters_by_k = kmeans_sweep(latents, k_values, n_init, seed)
    timings["kmeans_sweep_s"] = time.perf_counter() - start

    start = time.perf_counter()
    scores = silhouette_by_k(latents, clusters_by_k, silhouette_sample_size, seed, device)
    timings["silhouette_sweep_s"] = time.perf_counter() - start
    chosen_k = best_k(scores)

    clusters = clusters_by_k[chosen_k]
    counts = label_counts(clusters, labels, chosen_k, n_classes)
    table = dominant_labels(counts, class_names)

    if n_classes in clusters_by_k:
        clusters_at_classes = clusters_by_k[n_classes]
    else:
        clusters_at_classes = kmeans_sweep(latents, [n_classes], n_init, seed)[n_classes]

    plot_silhouette(scores, chosen_k, dataset, out_dir / "silhouette_vs_k.png")
    plot_cluster_bars(counts, class_names, dataset, out_dir / f"cluster_label_counts_k{chosen_k}.png")
    write_csv(table, out_dir / f"cluster_to_label_k{chosen_k}.csv")
    pseudo_label_of_cluster = counts.argmax(axis=1)
    write_csv(
        [
            {
                "index": int(index),
                "split": str(split),
                "cluster": int(cluster),
                "pseudo_label": int(pseudo_label_of_cluster[cluster]),
                "true_label": int(label),
            }
            for index, split, cluster, label in zip(file_indices, splits, clusters, labels)
        ],
        out_dir / f"pseudo_labels_k{chosen_k}.csv",
    )

    return {
        "n_points": n_samples,
        "points_per_split": {str(split): int((splits == split).sum()) for split in np.unique(splits)},
        "latent_dim": int(latents.shape[1]),
        "kmeans": {"n_init": n_init, "random_state": seed},
        "silhouette": {
            "by_k": {str(k): score for k, score in scores.items()},
            "points_used": n_samples if silhouette_sample_size is None else min(silhouette_sample_size, n_samples),
            "exact_on_all_points": silhouette_sample_size is None or silhouette_sample_size >= n_samples,
        },
        "best_k": chosen_k,
        "purity_at_best_k": purity(counts),
        "cluster_to_label_at_best_k": table,
        f"at_k_{n_classes}": {
            "acc_hungarian": hungarian_accuracy(labels, clusters_at_classes),
            "nmi": float(normalized_mutual_info_score(labels, clusters_at_classes)),
            "ari": float(adjusted_rand_score(labels, clusters_at_classes)),
        },
        "timings": timings,
    }
