"""Time the one-pass silhouette sweep against scikit-learn's silhouette_score, in one process.

    python benchmarks/silhouette_sweep.py [--checkpoint runs/mnist/version_0/checkpoints/best-*.ckpt]

With a checkpoint, the points are the autoencoder's latents of all 70,000 MNIST images. Without
one, they are the first principal components of the same images, which have the same shape. scikit-learn takes about a
minute per k at this size, so it is timed on a few k values and its sweep time is that median
per-k time times the number of k values.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.clustering import kmeans_sweep  # noqa: E402
from analysis.silhouette import silhouette_scores  # noqa: E402


def load_points(checkpoint: str | None, latent_dim: int) -> np.ndarray:
    from datamodules import MNISTDataModule

    datamodule = MNISTDataModule(data_dir=str(Path(__file__).resolve().parents[1] / "data"))
    datamodule.setup("fit")
    images = torch.cat([datamodule.images[split] for split in ("train", "val", "test")])
    if checkpoint:
        from lightning_modules import AutoencoderModule

        return AutoencoderModule.load_from_checkpoint(checkpoint, map_location="cpu").encode(images)
    from sklearn.decomposition import PCA

    flat = images.reshape(len(images), -1).numpy()
    return PCA(n_components=latent_dim, random_state=0).fit_transform(flat).astype(np.float32)


def peak_memory_kib() -> int:
    """Return this process's peak resident memory in KiB.

    Reads VmHWM, because ru_maxrss starts a child process at its parent's peak on Linux.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("VmHWM not found in /proc/self/status; this measurement needs Linux")


def matmul_rate(repeats: int = 5) -> float:
    """Return the fp32 matrix-product rate in GFLOP/s at the sweep's block shapes."""
    left = torch.randn(8192, 8192)
    right = torch.randn(8192, 110)
    square = torch.randn(2048, 2048)
    left @ right  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        square @ square
        left @ right
        times.append(time.perf_counter() - start)
    flops = 2 * 2048**3 + 2 * 8192 * 8192 * 110
    return flops / statistics.median(times) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="autoencoder checkpoint whose latents are used")
    parser.add_argument("--latent-dim", type=int, default=6, help="dimensions without a checkpoint")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of the one-pass sweep")
    parser.add_argument("--sklearn-k", type=int, nargs="+", default=[5, 10, 15],
                        help="k values timed with sklearn's silhouette_score (one run each)")
    parser.add_argument("--memory-only", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.memory_only:
        # Only the saved points and labels are loaded here, so the peak is the sweep's own.
        saved = np.load(args.memory_only)
        points, labellings = saved["points"], list(saved["labellings"])
        before = peak_memory_kib()
        silhouette_scores(points, labellings)
        print(f"{before} {peak_memory_kib()}")
        return

    points = load_points(args.checkpoint, args.latent_dim)
    k_values = list(range(5, 16))
    clusters = kmeans_sweep(points, k_values, n_init=1, seed=0)
    labellings = [clusters[k] for k in k_values]

    n, d = points.shape
    print(f"points: {n} x {d}, k = {k_values[0]}..{k_values[-1]}, torch threads: {torch.get_num_threads()}")
    sweep_times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        ours = silhouette_scores(points, labellings)
        sweep_times.append(time.perf_counter() - start)
    sweep = statistics.median(sweep_times)
    print(f"one-pass sweep: median {sweep:.2f} s of {[round(t, 2) for t in sweep_times]}")

    from sklearn.metrics import silhouette_score

    sklearn_times, largest_difference = [], 0.0
    for k in args.sklearn_k:
        start = time.perf_counter()
        reference = silhouette_score(points, clusters[k])
        sklearn_times.append(time.perf_counter() - start)
        largest_difference = max(largest_difference, abs(reference - ours[k_values.index(k)]))
    per_k = statistics.median(sklearn_times)
    sklearn_sweep = per_k * len(k_values)
    print(f"sklearn silhouette_score: median {per_k:.1f} s per k over k = {args.sklearn_k}, "
          f"{sklearn_sweep:.0f} s for the {len(k_values)} k values")
    print(f"largest |difference| from sklearn: {largest_difference:.2e}")
    print(f"speed-up: {sklearn_sweep / sweep:.1f}x")

    rate = matmul_rate()
    total_columns = sum(k_values)
    # Distances are computed for the symmetric half only: n^2 / 2 products of width d + 2.
    # The cluster sums use every pair once per row: n^2 products of width sum(k).
    flops = 2.0 * n * n * ((d + 2) / 2 + total_columns)
    print(f"fp32 matrix products on this machine: {rate:.0f} GFLOP/s")
    print(f"sweep arithmetic {flops / 1e12:.2f} TFLOP, bound {flops / rate / 1e9:.1f} s, "
          f"achieved {flops / sweep / 1e9:.0f} GFLOP/s = {flops / sweep / 1e9 / rate:.0%} of the product rate")

    # Peak memory of the sweep, measured in a fresh process that loads only its inputs.
    with tempfile.TemporaryDirectory() as folder:
        inputs = Path(folder) / "inputs.npz"
        np.savez(inputs, points=points, labellings=np.stack(labellings))
        command = [sys.executable, __file__, "--memory-only", str(inputs)]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    before, after = map(int, output.split())
    print(f"peak resident memory: {after / 1024:.0f} MiB with the sweep, {before / 1024:.0f} MiB "
          f"before it (Python, torch and the inputs)")


if __name__ == "__main__":
    main()
