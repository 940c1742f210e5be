"""Issue 4's acceptance check, end to end through the CLI a new user runs.

`ddt-export build` (no model options: the bundled digits DDT), then `ddt-export generate BUILD
--labels ... --seed 0 --save-npz`, 200 samples (20 per class). An RBF SVM trained on the real 8x8
digits (independent of the DDT and of `ddt-bench quality`'s MLP judge) must recognise >= 90% with no
sharing and >= 85% with `--sharing-ratio 0.75 --schedule dp`. Shipped model: 100% / 100%.
"""

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.svm import SVC

from ddt_export.bench.quality import to_digit_space

LABELS = [c for c in range(10) for _ in range(20)]  # 20 per class


@pytest.fixture(scope="module")
def svm():
    d = load_digits()
    return SVC(gamma=0.001, C=10.0).fit(d.data, d.target)


def recognised(npz, svm) -> float:
    images = np.load(npz)["arr_0"]  # N H W 3 uint8, the ADM suite's layout
    assert images.dtype == np.uint8 and images.shape == (len(LABELS), 16, 16, 3)
    samples = images[..., :1].transpose(0, 3, 1, 2).astype(np.float64) / 127.5 - 1.0  # N 1 16 16 in [-1, 1]
    return float((svm.predict(to_digit_space(samples)) == np.array(LABELS)).mean())


@pytest.mark.parametrize("sharing, floor", [((), 0.90), (("--sharing-ratio", 0.75, "--schedule", "dp"), 0.85)],
                         ids=["no-sharing", "dp-0.75"])
def test_bundled_digits_are_recognised(cli, bundled_build, svm, tmp_path, sharing, floor):
    npz = tmp_path / "samples.npz"
    r = cli("generate", bundled_build, "--labels", ",".join(map(str, LABELS)), "--seed", 0, *sharing, "--save-npz", npz)
    assert r.code == 0, r.err
    if sharing:
        assert "encoder ran 10 times" in r.err  # 40 steps, a quarter of them
    accuracy = recognised(npz, svm)
    assert accuracy >= floor, f"{accuracy:.1%} recognised, want >= {floor:.0%}"
