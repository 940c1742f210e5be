#!/usr/bin/env bash
# Reproduce benchmarks/latency.md: latency vs sharing ratio for B/2-256 and XL/2-256 (random weights).
# Takes about an hour on 2 cores; run it on an otherwise idle machine (the JSON records the load average).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=benchmarks/results
ENGINES=${ENGINES:-engines}
mkdir -p "$OUT"
[ -f "$ENGINES/ddt-b-256/manifest.json" ] || ddt-export build --preset b --res 256 --random-weights --out "$ENGINES/ddt-b-256"
for backend in onnxruntime openvino; do
  ddt-bench latency "$ENGINES/ddt-b-256" --backend "$backend" --steps 16 --batch 1 --schedule uniform --repeat 3 \
    --json "$OUT/latency-b256-$backend.json" --plot "$OUT/latency-b256-$backend.png" | tee "$OUT/latency-b256-$backend.txt"
done
# XL: a short run (8 steps, 3 ratios); the fp32 encoder is stored with external data (> 2 GB)
[ -f "$ENGINES/ddt-xl-256/manifest.json" ] || ddt-export build --preset xl --res 256 --random-weights --out "$ENGINES/ddt-xl-256"
for backend in onnxruntime openvino; do
  ddt-bench latency "$ENGINES/ddt-xl-256" --backend "$backend" --ratios 0,0.5,0.75 --steps 8 --batch 1 --schedule uniform --repeat 2 \
    --json "$OUT/latency-xl256-$backend.json" --plot "$OUT/latency-xl256-$backend.png" | tee "$OUT/latency-xl256-$backend.txt"
done
# peak memory of the XL builds, fp32 and fp16, each followed by a 2-step sample from the folder
python benchmarks/build_memory.py --preset xl --res 256 --out-root "$ENGINES/memory" --json "$OUT/build_memory.json"
