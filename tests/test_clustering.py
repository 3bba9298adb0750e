import math
import warnings

import numpy as np
import pytest
from sklearn.metrics import silhouette_samples, silhouette_score

from analysis.clustering import (
    best_k,
    dominant_labels,
    hungarian_accuracy,
    kmeans_sweep,
    label_counts,
    purity,
    silhouette_by_k,
    validate_k_range,
)
from analysis.silhouette import silhouette_scores
from tests.conftest import DATA_DIR


@pytest.fixture(scope="module")
def mnist_vectors():
    """3,000 real MNIST test images projected onto their first 6 principal components."""
    from sklearn.decomposition import PCA
    from torchvision import datasets

    test_file = datasets.MNIST(str(DATA_DIR), train=False, download=False)
    pixels = test_file.data[:3000].reshape(3000, -1).float().numpy() / 255.0
    vectors = PCA(n_components=6, random_state=0).fit_transform(pixels).astype(np.float32)
    return vectors, test_file.targets[:3000].numpy()


def test_silhouette_matches_sklearn_on_real_vectors(mnist_vectors):
    vectors, _ = mnist_vectors
    clusters = kmeans_sweep(vectors, range(5, 16), n_init=2, seed=0)
    # Small blocks force diagonal and off-diagonal blocks, and a shorter last block.
    ours = silhouette_scores(vectors, list(clusters.values()), block_size=700)
    for k, score in zip(clusters, ours):
        assert score == pytest.approx(silhouette_score(vectors, clusters[k]), abs=1e-6), k


def test_silhouette_singleton_cluster_scores_zero(mnist_vectors):
    vectors, labels = mnist_vectors
    vectors, labels = vectors[:500], labels[:500].copy()
    labels[7] = 42  # point 7 alone in its cluster
    assert silhouette_samples(vectors, labels)[7] == 0.0
    ours = silhouette_scores(vectors, [labels])[0]
    assert ours == pytest.approx(silhouette_score(vectors, labels), abs=1e-6)


def test_silhouette_with_duplicate_points():
    rng = np.random.default_rng(1)
    vectors = np.repeat(rng.normal(size=(50, 3)).astype(np.float32), 4, axis=0)
    labels = np.repeat(np.arange(5), 40)
    ours = silhouette_scores(vectors, [labels])[0]
    assert ours == pytest.approx(silhouette_score(vectors, labels), abs=1e-6)


def test_silhouette_single_label_is_nan_with_warning():
    vectors = np.random.default_rng(0).normal(size=(40, 2))
    with pytest.warns(UserWarning, match="1 distinct labels"):
        scores = silhouette_scores(vectors, [np.zeros(40, dtype=int), np.arange(40) % 2])
    assert math.isnan(scores[0])
    assert scores[1] == pytest.approx(silhouette_score(vectors, np.arange(40) % 2), abs=1e-6)


def test_sweep_marks_k_with_fewer_clusters_invalid(mnist_vectors):
    vectors, labels = mnist_vectors
    clusters = {5: labels[:300] % 5, 6: labels[:300] % 5}  # k = 6 but only 5 clusters used
    with pytest.warns(UserWarning, match="k=6 produced only 5 distinct clusters"):
        scores = silhouette_by_k(vectors[:300], clusters)
    assert not math.isnan(scores[5])
    assert math.isnan(scores[6])
    assert best_k(scores) == 5


def test_sweep_scores_each_k_and_best(mnist_vectors):
    vectors, _ = mnist_vectors
    clusters = kmeans_sweep(vectors[:1500], range(5, 16), n_init=2, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = silhouette_by_k(vectors[:1500], clusters)
    assert list(scores) == list(range(5, 16))
    assert all(-1.0 <= score <= 1.0 for score in scores.values())
    assert best_k(scores) == max(scores, key=scores.get)


def test_silhouette_sampling_is_seeded(mnist_vectors):
    vectors, labels = mnist_vectors
    clusters = {10: labels}
    first = silhouette_by_k(vectors, clusters, sample_size=800, seed=5)
    again = silhouette_by_k(vectors, clusters, sample_size=800, seed=5)
    other = silhouette_by_k(vectors, clusters, sample_size=800, seed=6)
    assert first == again
    assert first != other


def test_hungarian_accuracy_of_permuted_truth():
    labels = np.random.default_rng(0).integers(0, 10, size=1000)
    permutation = np.random.default_rng(1).permutation(10)
    assert hungarian_accuracy(labels, permutation[labels]) == 1.0
    assert purity(label_counts(permutation[labels], labels, 10, 10)) == 1.0


def test_hungarian_accuracy_with_merged_clusters():
    labels = np.array([0, 0, 1, 1, 2, 2])
    clusters = np.array([0, 0, 0, 0, 1, 1])  # labels 0 and 1 merged
    assert hungarian_accuracy(labels, clusters) == pytest.approx(4 / 6)


def test_cluster_table_on_hand_made_case():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 1])
    clusters = np.array([0, 0, 1, 1, 1, 2, 2, 2, 0, 2])
    counts = label_counts(clusters, labels, n_clusters=3, n_classes=3)
    assert counts.tolist() == [[2, 0, 1], [1, 2, 0], [0, 1, 3]]
    table = dominant_labels(counts, ["zero", "one", "two"])
    assert [row["dominant_label"] for row in table] == [0, 1, 2]
    assert [row["dominant_name"] for row in table] == ["zero", "one", "two"]
    assert [row["size"] for row in table] == [3, 3, 4]
    assert [row["dominant_share"] for row in table] == pytest.approx([2 / 3, 2 / 3, 3 / 4])
    assert purity(counts) == pytest.approx(7 / 10)


@pytest.mark.parametrize(
    "k_min, k_max, n_samples, message",
    [
        (1, 15, None, "k_min must be at least 2"),
        (8, 5, None, "must not be smaller than k_min"),
        (5, 100, 100, "must be smaller than the number of samples"),
    ],
)
def test_invalid_k_range(k_min, k_max, n_samples, message):
    with pytest.raises(ValueError, match=message):
        validate_k_range(k_min, k_max, n_samples)
