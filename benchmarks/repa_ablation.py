"""Compare digits DDTs trained with and without the REPA term (see repa_ablation.sh).

For each training run DIR (holding build/ with a 40-step calibration and quality.json):
- step-to-step consistency of the self-condition s: the mean cosine similarity of s at adjacent steps,
  and the reuse cost a schedule pays, mean(1 - sim[i, last recompute <= i]) over the steps it skips,
  for uniform and DP at ratios 0.75 and 0.87 (what the DP minimises);
- quality at those ratios from `ddt-bench quality` (accuracy, Frechet distance).

    python benchmarks/repa_ablation.py RUN_DIR [RUN_DIR ...] --json benchmarks/results/repa_ablation.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import yaml

from ddt_export import manifest, schedules

STEPS = 40
RATIOS = (0.75, 0.87)


def reuse_cost(sim: np.ndarray, recompute: list[int]) -> float:
    """Mean dissimilarity between the state a skipped step reuses and the one it would have computed."""
    costs, last = [], 0
    for i in range(len(sim)):
        if i in recompute:
            last = i
        else:
            costs.append(1.0 - sim[i, last])
    return float(np.mean(costs)) if costs else 0.0


def summarise(run: Path) -> dict:
    m = manifest.read(run / "build", verify=False)
    sim = m.similarity(m.sampler.with_overrides(num_steps=STEPS))  # calibrated under the build's own sampler defaults
    if sim is None:
        raise SystemExit(f"error: {run}/build has no {STEPS}-step calibration; run `ddt-export calibrate {run}/build --steps {STEPS}`")
    repa = yaml.safe_load((run / "digits.yaml").read_text())["ddt_export"]["training"]["repa"]
    quality = json.loads((run / "quality.json").read_text())
    out = {"run": str(run), "repa_weight": repa["weight"], "adjacent_similarity": float(np.mean(np.diag(sim, 1))),
           "reuse_cost": {}, "quality": {}}
    for ratio in RATIOS:
        k = schedules.budget(STEPS, ratio)
        out["reuse_cost"][str(ratio)] = {"uniform": reuse_cost(sim, schedules.uniform(STEPS, ratio)),
                                         "dp": reuse_cost(sim, schedules.dp(sim, k))}
    for row in quality["rows"]:
        out["quality"][f"{row['ratio']}/{row['schedule']}"] = {"accuracy": row["accuracy"], "frechet": row["frechet"],
                                                              "encoder_calls": row["encoder_calls"]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    result = {"steps": STEPS, "runs": [summarise(r) for r in args.runs]}
    for r in result["runs"]:
        costs = ", ".join(f"{k}: uniform {v['uniform']:.4f} dp {v['dp']:.4f}" for k, v in r["reuse_cost"].items())
        quality = ", ".join(f"{k} acc {v['accuracy']:.3f} F {v['frechet']:.3f}" for k, v in r["quality"].items())
        print(f"repa {r['repa_weight']}: adjacent sim {r['adjacent_similarity']:.4f}; reuse cost {costs}\n    {quality}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
