"""The quality benchmark's judges, all independent of the DDT: digits back in 8x8 space, an MLP classifier trained on
the real digits, three feature spaces and the Frechet distance with its bootstrap (bench/quality.py uses them)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..errors import DDTError


@lru_cache(maxsize=1)
def _inverse_upsampling() -> np.ndarray:
    """(64, 256): the least-squares inverse of the bilinear 8x8 -> 16x16 upsampling the model was trained on."""
    import torch
    import torch.nn.functional as F

    basis = torch.eye(64).reshape(64, 1, 8, 8)
    up = F.interpolate(basis, size=(16, 16), mode="bilinear", align_corners=False).reshape(64, 256).numpy()  # rows: U^T
    return np.linalg.pinv(up.T.astype(np.float64))  # (64, 256)


def to_digit_space(samples: np.ndarray) -> np.ndarray:
    """Generated (B, 1, 16, 16) in [-1, 1] -> (B, 64) in load_digits' 0..16 scale."""
    if samples.shape[1:] != (1, 16, 16):
        raise DDTError(f"the quality benchmark needs the bundled digits model's 1 x 16 x 16 samples (got {samples.shape[1:]})")
    x8 = samples.reshape(len(samples), 256).astype(np.float64) @ _inverse_upsampling().T  # B 64
    return np.clip((x8 + 1.0) * 8.0, 0.0, 16.0)


class Judge:
    """An MLP trained on the real digits: class predictions and hidden-layer features."""

    def __init__(self, seed: int = 0):
        from sklearn.datasets import load_digits
        from sklearn.neural_network import MLPClassifier

        digits = load_digits()
        self.real = digits.data.astype(np.float64)  # 1797 x 64, 0..16
        self.mlp = MLPClassifier(hidden_layer_sizes=(128,), max_iter=600, random_state=seed).fit(self.real / 16.0, digits.target)

    def predict(self, x64: np.ndarray) -> np.ndarray:
        return self.mlp.predict(x64 / 16.0)

    def features(self, x64: np.ndarray) -> np.ndarray:
        return np.maximum(x64 / 16.0 @ self.mlp.coefs_[0] + self.mlp.intercepts_[0], 0.0)  # ReLU hidden layer


def gaussian(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A feature set's mean, covariance (+1e-6 I) and the covariance's symmetric square root, for `frechet_distance`."""
    eps = 1e-6 * np.eye(x.shape[1])  # dead ReLU units make covariances singular; FID code adds the same offset
    cov = np.cov(x, rowvar=False) + eps
    w, v = np.linalg.eigh(cov)
    return x.mean(0), cov, (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(a: np.ndarray, b: np.ndarray | tuple) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2), as FID computes it; `b` may be `gaussian(b)`, made once.

    Tr (S_a S_b)^1/2 is the sum of the square roots of the eigenvalues of S_b^1/2 S_a S_b^1/2 (similar to S_a S_b,
    and symmetric): one symmetric eigensolve. In the 128-wide MLP space, where the bootstrap's thousands of distances
    spend their time, a whole distance takes 3.6 ms against 28 ms for scipy's Schur sqrtm of the product alone (8x,
    Intel Xeon); equal to the sqrtm formula to 1e-7 relative in every space (tests/bench/test_quality.py).
    """
    mu_a, sa, _ = gaussian(a)
    mu_b, sb, root_b = b if isinstance(b, tuple) else gaussian(b)
    eig = np.linalg.eigvalsh(root_b @ sa @ root_b)
    tr_covmean = np.sqrt(np.clip(eig, 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(sa) + np.trace(sb) - 2 * tr_covmean)


def bootstrap_frechet(feats: list[np.ndarray], real: np.ndarray, *, resamples: int = 100, seed: int = 0) -> np.ndarray:
    """(len(feats), resamples): the Frechet distance of every feature set on shared resampled indices.

    All sets are resampled with the same indices, so sets generated from the same noise and
    labels stay paired: the spread of a difference between two rows is the paired spread.
    """
    rng = np.random.default_rng(seed)
    n = len(feats[0])
    real_g = gaussian(real)  # the real set is not resampled
    out = np.empty((len(feats), resamples))
    for b in range(resamples):
        idx = rng.integers(0, n, n)
        for i, f in enumerate(feats):
            out[i, b] = frechet_distance(f[idx], real_g)
    return out


class FeatureSpaces:
    """Every feature space a row is judged in, each independent of the DDT.

    mlp: the judge classifier's 128-wide hidden layer (a learned model);
    pca16: the top 16 principal components of the real 8x8 digits (a linear projection fitted to
           the real data, no learned model);
    pixels: the raw 8x8 pixels on load_digits' 0..16 scale (nothing fitted at all).
    """

    NAMES = ("mlp", "pca16", "pixels")

    def __init__(self, judge: Judge):
        self.judge = judge
        real = judge.real / 16.0
        self.mean = real.mean(0)
        _, _, vt = np.linalg.svd(real - self.mean, full_matrices=False)
        self.pca = vt[:16].T  # 64 x 16

    def __call__(self, x64: np.ndarray) -> dict[str, np.ndarray]:
        return {"mlp": self.judge.features(x64), "pca16": (x64 / 16.0 - self.mean) @ self.pca, "pixels": x64 / 16.0}
