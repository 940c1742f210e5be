#!/usr/bin/env bash
# Does the optional representation-alignment (REPA) term make the encoder's self-condition more
# consistent across steps, and does that help sharing? Trains the bundled recipe twice (same seed,
# --repa-weight 0 and 0.5), builds both, and compares the calibrated step-to-step similarity of s and
# quality at ratios 0, 0.75, 0.87. About 50 minutes on 2 idle cores.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-/tmp/repa-ablation}
OUT=benchmarks/results
mkdir -p "$WORK"
for w in 0 0.5; do
  dir="$WORK/repa-$w"
  [ -f "$dir/digits.safetensors" ] || python benchmarks/train_digits.py --repa-weight "$w" --out-dir "$dir"
  [ -f "$dir/build/manifest.json" ] || ddt-export build --config "$dir/digits.yaml" --ckpt "$dir/digits.safetensors" --out "$dir/build"
  ddt-export calibrate "$dir/build" --steps 40 --samples 64
  ddt-bench quality "$dir/build" --ratios 0,0.75,0.87 --json "$dir/quality.json"
done
python benchmarks/repa_ablation.py "$WORK"/repa-0 "$WORK"/repa-0.5 --json "$OUT/repa_ablation.json"
