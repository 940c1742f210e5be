"""Bad input to every Python CLI, as a table: each case exits 2 with one line on stderr that names the problem
(and the fix), no traceback, and leaves the working folder exactly as it was (nothing created, changed or removed).

The cases run in-process through the real entry points (`ddt_export.cli.main` / `ddt_export.bench.cli.main`) with the working
folder set to a scratch folder holding a copy of the session's tiny build (`B`), a few prepared input files,
and a folder that is not ours (`mine/`, with `app.js`). `ddt-run`'s own table is in tests/runtime/.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

GEN = ["generate", "B", "--labels", "1", "--steps", "2"]
LAT = ["--save-latents", "x.npy"]

CASES = [
    # ------------------------------------------------------------- generate: numbers
    ("steps-text", ["generate", "B", "--labels", "1", "--steps", "abc", *LAT], "--steps must be a whole number of ASCII digits"),
    ("steps-float", ["generate", "B", "--labels", "1", "--steps", "1e20", *LAT], "--steps must be a whole number of ASCII digits"),
    ("steps-zero", ["generate", "B", "--labels", "1", "--steps", "0", *LAT], "steps must be between 1 and 10,000"),
    ("steps-huge", ["generate", "B", "--labels", "1", "--steps", "99999999999", *LAT], "steps must be between 1 and 10,000"),
    ("steps-negative", ["generate", "B", "--labels", "1", "--steps", "-5", *LAT], "steps must be between 1"),
    ("cfg-nan", [*GEN, "--cfg", "nan", *LAT], "--cfg must be a finite number (got 'nan')"),  # ddt-run's words
    ("cfg-inf", [*GEN, "--cfg", "inf", *LAT], "--cfg must be a finite number (got 'inf')"),
    ("cfg-minus-inf", [*GEN, "--cfg", "-inf", *LAT], "--cfg must be a finite number"),
    ("cfg-text", [*GEN, "--cfg", "high", *LAT], "--cfg must be a decimal number of ASCII digits"),
    ("timeshift-nan", [*GEN, "--timeshift", "nan", *LAT], "--timeshift must be a finite number"),
    ("timeshift-zero", [*GEN, "--timeshift", "0", *LAT], "timeshift must be > 0"),
    ("timeshift-negative", [*GEN, "--timeshift", "-1", *LAT], "timeshift must be > 0"),
    ("interval-nan", [*GEN, "--interval", "nan,1", *LAT], "--interval LO must be a finite number"),
    ("interval-inf", [*GEN, "--interval", "0,inf", *LAT], "--interval HI must be a finite number"),
    ("interval-one", [*GEN, "--interval", "0.5", *LAT], "--interval takes LO,HI"),
    ("interval-reversed", [*GEN, "--interval", "0.9,0.1", *LAT], "is reversed"),
    ("interval-text", [*GEN, "--interval", "a,b", *LAT], "--interval LO must be a decimal number"),
    ("interval-three", [*GEN, "--interval", "0,0.5,1", *LAT], "--interval takes LO,HI"),
    ("last-step-zero", [*GEN, "--last-step", "0", *LAT], "last step must be in (0, 1)"),
    ("last-step-big", [*GEN, "--last-step", "1.5", *LAT], "last step must be in (0, 1)"),
    ("last-step-nan", [*GEN, "--last-step", "nan", *LAT], "--last-step must be a finite number"),
    # ------------------------------------------------------------- generate: the solver
    ("sampler-unknown", [*GEN, "--sampler", "heun", *LAT], "unknown sampler 'heun'; choose euler or adams"),
    ("order-zero", [*GEN, "--sampler", "adams", "--order", "0", *LAT], "order must be from 1 to 4 (got 0)"),
    ("order-five", [*GEN, "--sampler", "adams", "--order", "5", *LAT], "order must be from 1 to 4 (got 5)"),
    ("order-float", [*GEN, "--sampler", "adams", "--order", "2.5", *LAT], "--order must be a whole number"),
    ("order-text", [*GEN, "--sampler", "adams", "--order", "two", *LAT], "--order must be a whole number"),
    ("order-without-adams", [*GEN, "--order", "3", *LAT], "order 3 is for the Adams sampler (Euler is order 1); add --sampler adams"),
    ("calibrate-sampler-unknown", ["calibrate", "B", "--steps", "4", "--sampler", "rk4"], "unknown sampler 'rk4'"),
    ("calibrate-order-five", ["calibrate", "B", "--steps", "4", "--sampler", "adams", "--order", "5"], "order must be from 1 to 4"),
    # ------------------------------------------------------------- generate: labels, flags
    ("labels-missing", ["generate", "B", *LAT], "Missing option '--labels'"),
    ("labels-empty", ["generate", "B", "--labels", "", *LAT], "give at least one label"),
    ("labels-float", ["generate", "B", "--labels", "1.5", *LAT], "--labels must be comma-separated whole numbers"),
    ("labels-text", ["generate", "B", "--labels", "a,b", *LAT], "--labels must be comma-separated whole numbers"),
    ("labels-out-of-range", ["generate", "B", "--labels", "99", *LAT], "label 99 is outside [0, 9]"),
    ("labels-negative", ["generate", "B", "--labels", "-1", *LAT], "label -1 is outside"),
    ("labels-too-many", ["generate", "B", "--labels", ",".join(["1"] * 1025), *LAT], "at most 1024 per call"),
    ("unknown-flag", [*GEN, "--bogus", *LAT], "No such option: --bogus"),
    ("unknown-command", ["generat", "B"], "No such command 'generat'"),
    ("no-output", GEN, "nothing would be saved"),
    # ------------------------------------------------------------- generate: outputs, checked before work
    ("out-not-png", [*GEN, "--out", "x.txt"], "expected a .png file name"),
    ("out-directory", [*GEN, "--out", "mine"], "is a folder"),
    ("out-under-missing-file", [*GEN, "--out", "notes.txt/sub/x.png"], "is a file, so nothing can be created under it"),
    ("out-proc", [*GEN, "--out", "/proc/x.png"], "is a system folder"),
    ("out-under-file", [*GEN, "--out", "notes.txt/x.png"], "is a file, so nothing can be created under it"),
    ("latents-proc", [*GEN, "--save-latents", "/proc/x.npy"], "is a system folder"),
    ("latents-wrong-suffix", [*GEN, "--save-latents", "x.npz"], "expected a .npy file name"),
    ("latents-directory", [*GEN, "--save-latents", "mine"], "is a folder"),
    ("npz-wrong-suffix", [*GEN, "--save-npz", "x.png"], "expected a .npz file name"),
    ("npz-dev", [*GEN, "--save-npz", "/dev/x.npz"], "is a system folder"),
    ("out-latent-without-vae", [*GEN, "--out", "x.png"], "no VAE decoder"),
    # ------------------------------------------------------------- generate: noise
    ("seed-and-noise", [*GEN, "--seed", "1", "--noise", "noise.npy", *LAT], "either a seed or noise"),
    ("noise-missing", [*GEN, "--noise", "nope.npy", *LAT], "cannot read noise"),
    ("noise-shape", [*GEN, "--noise", "noise_bad_shape.npy", *LAT], "noise has shape"),
    ("noise-batch", [*GEN, "--noise", "noise2.npy", *LAT], "noise has batch 2 but 1 labels"),
    ("noise-nan", [*GEN, "--noise", "noise_nan.npy", *LAT], "noise holds inf or nan"),
    ("noise-text-file", [*GEN, "--noise", "notes.txt", *LAT], "cannot read noise"),
    ("noise-pickle", [*GEN, "--noise", "pickled.npy", *LAT], "cannot read noise"),
    ("noise-int", [*GEN, "--noise", "noise_int.npy", *LAT], "noise must be a float32 array"),
    # ------------------------------------------------------------- generate: schedules
    ("ratio-one", [*GEN, "--sharing-ratio", "1.0", *LAT], "sharing ratio must be in [0, 1)"),
    ("ratio-negative", [*GEN, "--sharing-ratio", "-0.1", *LAT], "sharing ratio must be in [0, 1)"),
    ("ratio-nan", [*GEN, "--sharing-ratio", "nan", *LAT], "--sharing-ratio must be a finite number"),
    ("schedule-unknown", [*GEN, "--sharing-ratio", "0.5", "--schedule", "best", *LAT], "unknown schedule 'best'"),
    ("recompute-no-zero", [*GEN, "--recompute", "1", *LAT], "must start at step 0"),
    ("recompute-order", ["generate", "B", "--labels", "1", "--steps", "9", "--recompute", "0,5,3", *LAT], "strictly increasing"),
    ("recompute-range", [*GEN, "--recompute", "0,99", *LAT], "out of range for 2 steps"),
    ("recompute-and-ratio", [*GEN, "--recompute", "0", "--sharing-ratio", "0.5", *LAT], "not both"),
    ("recompute-text", [*GEN, "--recompute", "0,x", *LAT], "--recompute must be comma-separated"),
    ("backend-unknown", [*GEN, "--backend", "cuda", *LAT], "unknown backend 'cuda'"),
    ("backend-tensorrt", [*GEN, "--backend", "tensorrt", *LAT], "TensorRT"),
    # ------------------------------------------------------------- generate: builds and official files
    ("build-missing", ["generate", "nope", "--labels", "1", *LAT], "has no manifest.json"),
    ("build-is-file", ["generate", "notes.txt", "--labels", "1", *LAT], "is a file, not a build folder"),
    ("build-foreign", ["generate", "mine", "--labels", "1", *LAT], "not a ddt-export build"),
    ("build-and-config", ["generate", "B", "--config", "c.yaml", "--labels", "1", *LAT], "not both"),
    ("config-no-ckpt", ["generate", "--config", "c.yaml", "--labels", "1", *LAT], "--config needs --ckpt"),
    ("config-missing", ["generate", "--config", "nope.yaml", "--ckpt", "e.ckpt", "--labels", "1", *LAT], "does not exist"),
    ("config-directory", ["generate", "--config", "mine", "--ckpt", "e.ckpt", "--labels", "1", *LAT], "is a folder"),
    ("config-binary", ["generate", "--config", "binary.yaml", "--ckpt", "e.ckpt", "--labels", "1", *LAT], "is not a text file"),
    ("config-truncated", ["generate", "--config", "truncated.yaml", "--ckpt", "e.ckpt", "--labels", "1", *LAT], "not valid YAML"),
    ("config-steps-text", ["generate", "--config", "forty.yaml", "--ckpt", "e.ckpt", "--labels", "1", *LAT], "num_steps"),
    ("config-hidden-list", ["generate", "--config", "hidden_list.yaml", "--ckpt", "e.ckpt", "--labels", "1", *LAT], "hidden_size"),
    ("config-null-float", ["generate", "--config", "null_float.yaml", "--ckpt", "e.ckpt", "--labels", "1", *LAT], "null_class"),
    ("config-guidance-nan", ["generate", "--config", "guidance_nan.yaml", "--ckpt", "e.ckpt", "--labels", "1", *LAT], "guidance"),
    ("config-python-tag", ["generate", "--config", "tag.yaml", "--ckpt", "e.ckpt", "--labels", "1", *LAT], "python tags are refused"),
    ("config-list-top", ["generate", "--config", "list.yaml", "--ckpt", "e.ckpt", "--labels", "1", *LAT], "YAML mapping"),
    ("ckpt-empty", ["generate", "--config", "c.yaml", "--ckpt", "empty.ckpt", "--labels", "1", *LAT], "is empty"),
    ("ckpt-random", ["generate", "--config", "c.yaml", "--ckpt", "random.ckpt", "--labels", "1", *LAT], "not a PyTorch checkpoint"),
    ("ckpt-directory", ["generate", "--config", "c.yaml", "--ckpt", "mine", "--labels", "1", *LAT], "is a folder"),
    ("ckpt-truncated", ["generate", "--config", "c.yaml", "--ckpt", "truncated.ckpt", "--labels", "1", *LAT], "truncated or corrupt"),
    ("config-backend", ["generate", "--config", "c.yaml", "--ckpt", "e.ckpt", "--backend", "onnxruntime", "--labels", "1", *LAT],
     "runs a build folder"),
    # ------------------------------------------------------------- tampered builds
    ("tamper-shape", ["generate", "T_shape", "--labels", "1", *LAT], "do not match the architecture"),
    ("tamper-null-class", ["generate", "T_null", "--labels", "1", *LAT], "edited by hand"),
    ("tamper-same-size", ["generate", "T_bytes", "--labels", "1", *LAT], "does not match its sha256"),
    ("tamper-json", ["generate", "T_json", "--labels", "1", *LAT], "is not valid JSON"),
    ("tamper-format", ["generate", "T_format", "--labels", "1", *LAT], "incompatible ddt-export"),
    ("tamper-missing-file", ["generate", "T_missing", "--labels", "1", *LAT], "is missing"),
    ("tamper-types", ["generate", "T_types", "--labels", "1", *LAT], "sampler.num_steps"),
    ("inspect-tampered", ["inspect", "T_shape"], "do not match the architecture"),
    ("inspect-missing", ["inspect", "nope"], "has no manifest.json"),
    # ------------------------------------------------------------- build
    ("build-res-text", ["build", "--res", "abc"], "--res must be a whole number"),
    ("build-res-zero", ["build", "--res", "0", "--random-weights", "--out", "o"], "resolution 0"),
    ("build-res-250", ["build", "--res", "250", "--random-weights", "--out", "o"], "not a multiple of 16"),
    ("build-res-1024", ["build", "--res", "1024", "--random-weights", "--out", "o"], "preset resolutions are 256 and 512"),
    ("build-preset", ["build", "--preset", "xxl", "--random-weights", "--out", "o"], "unknown preset 'xxl'"),
    ("build-precision", ["build", "--precision", "fp4", "--out", "o"], "unknown precision 'fp4'"),
    ("build-opset", ["build", "--opset", "16", "--out", "o"], "opset 16 is not supported"),
    ("build-opset-text", ["build", "--opset", "x"], "--opset must be a whole number"),
    ("build-backend", ["build", "--backend", "cuda", "--out", "o"], "unknown build backend 'cuda'"),
    ("build-tensorrt", ["build", "--backend", "tensorrt", "--out", "o"], "TensorRT"),
    ("build-out-file", ["build", "--out", "notes.txt"], "is a file"),
    ("build-out-proc", ["build", "--out", "/proc/x"], "is a system folder"),
    ("build-out-dot", ["build", "--out", "."], "is the current (or root) folder"),
    ("build-out-foreign", ["build", "--out", "mine"], "not (only) a ddt-export build; nothing was changed"),
    ("build-out-fake-manifest", ["build", "--out", "fake"], "not (only) a ddt-export build; nothing was changed"),
    ("build-ckpt-alone", ["build", "--ckpt", "e.ckpt", "--out", "o"], "need --preset/--res or --config"),
    ("build-ckpt-and-random", ["build", "--res", "256", "--ckpt", "e.ckpt", "--random-weights", "--out", "o"], "not both"),
    ("build-config-and-res", ["build", "--config", "c.yaml", "--res", "256", "--out", "o"], "not both"),
    ("build-no-weights", ["build", "--preset", "b", "--res", "256", "--out", "o"], "no weights"),
    ("build-ckpt-missing", ["build", "--config", "c.yaml", "--ckpt", "nope.ckpt", "--out", "o"], "does not exist"),
    ("build-max-batch", ["build", "--backend", "auto", "--max-batch", "0", "--out", "o"], "--max-batch must be >= 1"),
    ("build-opt-level", ["build", "--backend", "auto", "--opt-level", "9", "--out", "o"], "--opt-level must be 0 to 5"),
    ("build-vae-missing", ["build", "--config", "c.yaml", "--ckpt", "e.ckpt", "--vae", "nope", "--out", "o"], "not a diffusers"),
    # ------------------------------------------------------------- calibrate, schedule, check, engines
    ("calibrate-steps-zero", ["calibrate", "B", "--steps", "0"], "steps must be between 1"),
    ("calibrate-steps-text", ["calibrate", "B", "--steps", "x"], "--steps must be a whole number"),
    ("calibrate-steps-missing", ["calibrate", "B"], "Missing option '--steps'"),
    ("calibrate-samples-zero", ["calibrate", "B", "--steps", "4", "--samples", "0"], "calibration needs 1 to 1024 samples"),
    ("calibrate-cfg-nan", ["calibrate", "B", "--steps", "4", "--cfg", "nan"], "--cfg must be a finite number"),
    ("calibrate-missing", ["calibrate", "nope", "--steps", "4"], "has no manifest.json"),
    ("schedule-missing", ["schedule", "--similarity", "nope.npy", "--budget", "2"], "cannot read similarity"),
    ("schedule-not-square", ["schedule", "--similarity", "noise2.npy", "--budget", "2"], "square N x N"),
    ("schedule-nan", ["schedule", "--similarity", "sim_nan.npy", "--budget", "2"], "finite"),
    ("schedule-budget-zero", ["schedule", "--similarity", "sim.npy", "--budget", "0"], "budget must be between 1"),
    ("schedule-budget-big", ["schedule", "--similarity", "sim.npy", "--budget", "99"], "budget must be between 1"),
    ("schedule-method", ["schedule", "--similarity", "sim.npy", "--budget", "2", "--method", "best"], "unknown method 'best'"),
    ("check-out-proc", ["check", "B", "--out", "/proc/r.json"], "is a system folder"),
    ("check-against-missing", ["check", "B", "--against", "nope"], "has no manifest.json"),
    ("check-steps-zero", ["check", "B", "--steps", "0"], "steps must be between 1"),
    ("engines-cpu", ["engines", "B"], "TensorRT"),
    ("engines-max-batch", ["engines", "B", "--max-batch", "0"], "--max-batch must be >= 1"),
    # ------------------------------------------------------------- sample (nothing may be written before the workers are up)
    ("sample-n-text", ["sample", "B", "--num-samples", "abc"], "--num-samples must be a whole number"),
    ("sample-n-zero", ["sample", "B", "--num-samples", "0", "--out", "s"], "--num-samples must be a whole number >= 1"),
    ("sample-batch-zero", ["sample", "B", "--num-samples", "4", "--batch", "0", "--out", "s"], "--batch must be"),
    ("sample-batch-huge", ["sample", "B", "--num-samples", "4", "--batch", "5000", "--out", "s"], "more than 1024 samples per call"),
    ("sample-workers", ["sample", "B", "--num-samples", "4", "--workers", "100", "--out", "s"], "do not fit this machine"),
    ("sample-tensorrt", ["sample", "B", "--num-samples", "4", "--backend", "tensorrt", "--out", "s"], "TensorRT"),
    ("sample-ratio", ["sample", "B", "--num-samples", "4", "--sharing-ratio", "1.5", "--out", "s"], "sharing ratio must be in [0, 1)"),
    ("sample-classes-range", ["sample", "B", "--num-samples", "4", "--classes", "99", "--out", "s"], "label 99 is outside"),
    ("sample-classes-text", ["sample", "B", "--num-samples", "4", "--classes", "a", "--out", "s"], "--classes takes `all`"),
    ("sample-cfg-nan", ["sample", "B", "--num-samples", "4", "--cfg", "nan", "--out", "s"], "--cfg must be a finite number"),
    ("sample-steps-zero", ["sample", "B", "--num-samples", "4", "--steps", "0", "--out", "s"], "steps must be between 1"),
    ("sample-out-file", ["sample", "B", "--num-samples", "4", "--out", "notes.txt"], "is a file"),
    ("sample-per-class", ["sample", "B", "--num-samples", "4", "--per-class", "0", "--out", "s"], "--per-class must be"),
    ("sample-seed", ["sample", "B", "--num-samples", "4", "--seed", "-1", "--out", "s"], "--seed must be"),
    ("sample-cpus", ["sample", "B", "--num-samples", "4", "--cpus-per-worker", "0", "--out", "s"], "--cpus-per-worker must be"),
    ("sample-address", ["sample", "B", "--num-samples", "4", "--address", "head:port", "--out", "s"], "port"),
    # ------------------------------------------------------------- issue 26: one integer grammar for labels and seeds
    ("labels-underscore", ["generate", "B", "--labels", "1_0", *LAT], "ASCII digits"),
    ("labels-full-width", ["generate", "B", "--labels", "\uff11", *LAT], "ASCII digits"),
    ("labels-arabic-indic", ["generate", "B", "--labels", "\u0661", *LAT], "ASCII digits"),
    ("labels-plus", ["generate", "B", "--labels", "+1", *LAT], "ASCII digits"),
    ("labels-empty-entry", ["generate", "B", "--labels", "1,,2", *LAT], "has an empty entry"),
    ("labels-trailing-comma", ["generate", "B", "--labels", "1,", *LAT], "has an empty entry"),
    ("labels-huge", ["generate", "B", "--labels", "9" * 5000, *LAT], "ASCII digits"),
    ("seed-2-to-64", [*GEN, "--seed", "18446744073709551616", *LAT], "--seed must be a whole number from 0 to 2^64 - 1"),
    ("seed-minus-one", [*GEN, "--seed", "-1", *LAT], "--seed must be a whole number from 0 to 2^64 - 1"),
    ("seed-underscore", [*GEN, "--seed", "1_0", *LAT], "--seed must be a whole number of ASCII digits"),
    ("seed-full-width", [*GEN, "--seed", "\uff17", *LAT], "--seed must be a whole number of ASCII digits"),
    ("seed-float", [*GEN, "--seed", "1.0", *LAT], "--seed must be a whole number of ASCII digits"),
    ("recompute-underscore", [*GEN, "--recompute", "0,1_0", *LAT], "ASCII digits"),
    ("recompute-empty-entry", [*GEN, "--recompute", "0,,1", *LAT], "has an empty entry"),
    ("sample-seed-2-to-64", ["sample", "B", "--num-samples", "4", "--seed", "18446744073709551616", "--out", "s"], "--seed must be"),
    ("sample-seed-underscore", ["sample", "B", "--num-samples", "4", "--seed", "1_0", "--out", "s"], "--seed must be"),
    ("sample-classes-underscore", ["sample", "B", "--num-samples", "4", "--classes", "1_0", "--out", "s"], "--classes takes"),
    ("sample-classes-empty-entry", ["sample", "B", "--num-samples", "4", "--classes", "1,,2", "--out", "s"], "--classes takes"),
    ("check-seed-negative", ["check", "B", "--seed", "-1"], "--seed must be"),
    # ------------------------------------------------------------- issue 26: inputs that would hang or never end
    ("noise-fifo", [*GEN, "--noise", "fifo.npy", *LAT], "is not a regular file"),
    ("noise-name-300", [*GEN, "--noise", "a" * 300 + ".npy", *LAT], "cannot read noise"),
    ("noise-too-big", [*GEN, "--noise", "noise_big.npy", *LAT], "more than the 268,435,456"),
    ("noise-folder", [*GEN, "--noise", "mine", *LAT], "is a folder"),
    ("schedule-fifo", ["schedule", "--similarity", "fifo.npy", "--budget", "2"], "is not a regular file"),
    ("schedule-too-big", ["schedule", "--similarity", "sim_big.npy", "--budget", "2"], "more than the 4,000,000"),
    ("schedule-2001", ["schedule", "--similarity", "sim_2001.npy", "--budget", "2"], "more than the 4,000,000"),
    ("config-fifo", ["generate", "--config", "fifo.yaml", "--ckpt", "e.ckpt", "--labels", "1", *LAT], "not a regular file"),
    ("ckpt-fifo", ["generate", "--config", "c.yaml", "--ckpt", "fifo.npy", "--labels", "1", *LAT], "not a regular file"),
    ("dp-too-many-steps", ["generate", "B", "--labels", "1", "--steps", "3000", "--sharing-ratio", "0.5", *LAT], "at most 2,000 steps"),
    ("calibrate-too-many-steps", ["calibrate", "B", "--steps", "3000"], "at most 2,000 steps"),
    # ------------------------------------------------------------- issue 26: operating-system limits, caught up front
    ("out-name-300", [*GEN, "--out", "a" * 300 + ".png"], "more than file systems hold"),
    ("latents-name-300", [*GEN, "--save-latents", "d/" + "a" * 300 + ".npy"], "more than file systems hold"),
    ("out-symlink-loop", [*GEN, "--out", "loop/x.png"], "is a symlink loop"),
    ("latents-symlink-loop", [*GEN, "--save-latents", "loop"], "is a symlink loop"),
    ("build-out-symlink-loop", ["build", "--out", "loop"], "is a symlink loop"),
    ("build-out-name-300", ["build", "--out", "a" * 300], "more than file systems hold"),
    ("sample-out-symlink-loop", ["sample", "B", "--num-samples", "4", "--out", "loop"], "is a symlink loop"),
    ("check-out-name-300", ["check", "B", "--out", "a" * 300 + ".json"], "more than file systems hold"),
    ("build-missing-symlink-loop", ["generate", "loop", "--labels", "1", *LAT], "loop"),
    # ------------------------------------------------------------- issue 26: nothing written into a build folder
    ("out-in-build", [*GEN, "--out", "B/grid.png"], "is inside the build folder"),
    ("out-over-build-file", [*GEN, "--save-latents", "B/x.npy"], "is inside the build folder"),
    ("out-in-build-via-link", [*GEN, "--save-latents", "Blink/x.npy"], "is inside the build folder"),
    ("latents-link-into-build", [*GEN, "--save-latents", "mlink.npy"], "is inside the build folder"),
    ("npz-in-build-subfolder", [*GEN, "--save-npz", "B/sub/x.npz"], "is inside the build folder"),
    ("check-out-in-build", ["check", "B", "--out", "B/report.json"], "is inside the build folder"),
    ("build-out-in-build", ["build", "--out", "B/sub"], "is inside the build folder"),
    ("sample-out-in-build", ["sample", "B", "--num-samples", "4", "--out", "B/s"], "is inside the build folder"),
    ("sample-out-is-build", ["sample", "B", "--num-samples", "4", "--out", "B"], "not a ddt-export sampling job"),
    ("sample-out-users-folder", ["sample", "B", "--num-samples", "4", "--out", "mine"], "not a ddt-export sampling job"),
    ("sample-out-users-samples", ["sample", "B", "--num-samples", "4", "--out", "theirs"], "not a ddt-export sampling job"),
    # ------------------------------------------------------------- issue 26: no silent substitutions, no non-finite results
    ("schedule-without-ratio", [*GEN, "--schedule", "uniform", *LAT], "--schedule uniform picks the encoder's steps for a --sharing-ratio"),
    ("schedule-dp-without-ratio", [*GEN, "--schedule", "dp", *LAT], "add e.g. --sharing-ratio"),
    ("schedule-with-recompute", [*GEN, "--recompute", "0", "--schedule", "uniform", *LAT], "--sharing-ratio"),
    ("sample-schedule-without-ratio", ["sample", "B", "--num-samples", "4", "--schedule", "uniform", "--out", "s"], "--sharing-ratio"),
    ("cfg-beyond-float32", [*GEN, "--cfg", "1e39", *LAT], "does not fit in float32"),
    ("timeshift-grid-overflow", [*GEN, "--timeshift", "1e300", *LAT], "is not finite in float32"),
    ("last-step-below-float32", [*GEN, "--last-step", "1e-300", *LAT], "below float32's resolution"),
    ("cfg-blows-up", ["generate", "B", "--labels", "1", "--steps", "6", "--cfg", "1e30", *LAT],
     "guidance scale (--cfg) 1e+30 made the guided velocity overflow"),
    ("noise-blows-up", [*GEN, "--noise", "noise_huge.npy", *LAT], "the noise (values up to 1e+30"),
    # ------------------------------------------------------------- issue 26: one number grammar for every option (NUMBERS below
    # runs 1_0 and a full-width digit through every int and float option; these rows are the grammar's edges)
    ("steps-underscore", ["generate", "B", "--labels", "1", "--steps", "1_0", *LAT], "--steps must be a whole number of ASCII digits, e.g. 50 (got '1_0')"),
    ("cfg-underscore", [*GEN, "--cfg", "1_0", *LAT], "--cfg must be a decimal number of ASCII digits, e.g. 4.0 (got '1_0')"),
    ("cfg-full-width", [*GEN, "--cfg", "\uff14", *LAT], "--cfg must be a decimal number of ASCII digits"),
    ("cfg-plus", [*GEN, "--cfg", "+4", *LAT], "--cfg must be a decimal number of ASCII digits"),
    ("cfg-hex", [*GEN, "--cfg", "0x1p2", *LAT], "--cfg must be a decimal number of ASCII digits"),
    ("cfg-space-inside", [*GEN, "--cfg", "4 .0", *LAT], "--cfg must be a decimal number of ASCII digits"),
    ("cfg-infinity-word", [*GEN, "--cfg", "Infinity", *LAT], "--cfg must be a finite number (got 'Infinity')"),
    ("cfg-past-float64", [*GEN, "--cfg", "1e400", *LAT], "--cfg must be a finite number (got '1e400')"),
    ("interval-underscore", [*GEN, "--interval", "0.3,1_0", *LAT], "--interval HI must be a decimal number of ASCII digits"),
    ("interval-empty-end", [*GEN, "--interval", "0.3,", *LAT], "--interval HI must be a decimal number of ASCII digits"),
    ("timeshift-arabic-indic", [*GEN, "--timeshift", "\u0661", *LAT], "--timeshift must be a decimal number of ASCII digits"),
    ("ratio-underscore", [*GEN, "--sharing-ratio", "0.7_5", *LAT], "--sharing-ratio must be a decimal number of ASCII digits"),
    ("sample-cpus-underscore", ["sample", "B", "--num-samples", "4", "--cpus-per-worker", "1_0", "--out", "s"], "--cpus-per-worker must be a decimal"),
    ("sample-gpus-nan", ["sample", "B", "--num-samples", "4", "--gpus-per-worker", "nan", "--out", "s"], "--gpus-per-worker must be a finite number"),
    ("sample-address-superscript", ["sample", "B", "--num-samples", "4", "--address", "head:\u00b2", "--out", "s"], "a port from 1 to 65535"),
    ("sample-address-full-width", ["sample", "B", "--num-samples", "4", "--address", "head:\uff16\uff13\uff17\uff19", "--out", "s"],
     "a port from 1 to 65535"),
    ("sample-address-port-zero", ["sample", "B", "--num-samples", "4", "--address", "head:0", "--out", "s"], "a port from 1 to 65535"),
    # ------------------------------------------------------------- issue 26: every JSON (and YAML) we parse fails in one line
    ("tamper-deep-json", ["generate", "T_deep", "--labels", "1", *LAT], "manifest.json is nested too deeply to be a ddt-export manifest"),
    ("tamper-65-levels", ["generate", "T_depth65", "--labels", "1", *LAT], "is nested too deeply (more than 64 levels)"),
    ("tamper-long-number", ["inspect", "T_bigint"], "is not a ddt-export manifest (Exceeds the limit (4300 digits)"),
    ("tamper-not-utf8", ["inspect", "T_latin1"], "manifest.json is not UTF-8 text"),
    ("out-under-deep-manifest", [*GEN, "--save-latents", "deep/x.npy", "--noise", "nope.npy"], "cannot read noise"),  # no crash first
    ("build-out-under-deep-manifest", ["build", "--res", "0", "--random-weights", "--out", "deep/o"], "resolution 0"),
    ("class-names-deep", ["build", "--class-names", "deep_names.json", "--out", "o"], "is nested too deeply to be a list of class names"),
    ("class-names-long-number", ["build", "--class-names", "names_bigint.json", "--out", "o"], "names_bigint.json is not a list of class names"),
    ("sample-job-deep", ["sample", "B", "--num-samples", "4", "--out", "job_deep"], "is nested too deeply to be a ddt-export sampling record"),
    ("sample-job-not-utf8", ["sample", "B", "--num-samples", "4", "--out", "job_latin1"], "job.json is not UTF-8 text"),
    ("sample-job-key-list", ["sample", "B", "--num-samples", "4", "--out", "job_list"], "job.json is not a ddt-export sampling record"),
    ("config-deep-yaml", ["generate", "--config", "deep.yaml", "--ckpt", "e.ckpt", "--labels", "1", *LAT], "nested too deeply to be a training config"),
]

BENCH = [
    ("latency-ratios-text", ["latency", "B", "--ratios", "a"], "--ratios must be comma-separated numbers"),
    ("latency-ratio-big", ["latency", "B", "--ratios", "1.5"], "sharing ratio must be in [0, 1)"),
    ("latency-ratio-nan", ["latency", "B", "--ratios", "nan"], "--ratios must be finite numbers"),
    ("latency-steps", ["latency", "B", "--steps", "0"], "steps must be between 1"),
    ("latency-batch", ["latency", "B", "--batch", "0"], "--batch must be between 1"),
    ("latency-repeat", ["latency", "B", "--repeat", "0"], "--repeat must be between 1"),
    ("latency-schedule", ["latency", "B", "--schedule", "best"], "unknown schedule 'best'"),
    ("latency-json-proc", ["latency", "B", "--json", "/proc/x.json"], "is a system folder"),
    ("latency-plot-suffix", ["latency", "B", "--plot", "x.txt"], "expected a .png file name"),
    ("latency-backend", ["latency", "B", "--backend", "cuda"], "unknown backend 'cuda'"),
    ("latency-missing", ["latency", "nope"], "has no manifest.json"),
    ("latency-unknown-flag", ["latency", "B", "--fast"], "No such option: --fast"),
    ("quality-json-proc", ["quality", "B", "--json", "/proc/x.json"], "is a system folder"),
    ("quality-plot-suffix", ["quality", "B", "--plot", "x.jpg"], "expected a .png file name"),
    ("quality-samples", ["quality", "B", "--samples", "5"], "--samples must be at least 10"),
    ("quality-precision", ["quality", "B", "--precisions", "fp32,fp4"], "unknown precision 'fp4' for the quality benchmark"),
    ("quality-seeds", ["quality", "B", "--seeds", "0,x"], "--seeds must be comma-separated whole numbers"),
    ("quality-int8-is-fp32", ["quality", "B", "--int8", "B"], "--int8 B is not an int8 build (its precision is fp32)"),
    ("quality-fp8-foreign", ["quality", "B", "--fp8", "mine"], "has no manifest.json"),
    ("quality-work-file", ["quality", "B", "--work", "notes.txt"], "--work notes.txt is a file; give a folder"),
    ("quality-precision-ratios", ["quality", "B", "--precision-ratios", "0,x"], "--precision-ratios must be comma-separated numbers"),
    ("quality-missing", ["quality", "nope"], "has no manifest.json"),
    ("precision-int8-is-fp32", ["precision", "B", "B"], "B is not an int8 build (its precision is fp32)"),
    ("precision-missing", ["precision", "B", "nope"], "has no manifest.json"),
    ("precision-tampered", ["precision", "T_shape", "B"], "T_shape"),
    ("precision-steps", ["precision", "B", "B", "--steps", "0"], "steps must be between 1"),
    ("precision-ratio", ["precision", "B", "B", "--ratios", "1.5"], "sharing ratio must be in [0, 1)"),
    ("precision-repeat", ["precision", "B", "B", "--repeat", "0"], "--repeat and --calls must be between 1 and 1000"),
    ("precision-json-suffix", ["precision", "B", "B", "--json", "x.txt"], "expected a .json file name"),
    ("precision-one-folder", ["precision", "B"], "Missing argument"),
    # ------------------------------------------------------------- issue 26: one number grammar (decimals.py) for ratio lists too
    ("latency-ratios-underscore", ["latency", "B", "--ratios", "0,0.7_5"], "--ratios must be comma-separated numbers of ASCII digits"),
    ("latency-ratios-full-width", ["latency", "B", "--ratios", "0,\uff10.5"], "--ratios must be comma-separated numbers of ASCII digits"),
    ("latency-ratios-empty-entry", ["latency", "B", "--ratios", "0,,0.5"], "--ratios has an empty entry"),
    ("precision-ratios-inf", ["precision", "B", "B", "--ratios", "0,inf"], "--ratios must be finite numbers"),
    ("quality-baseline-superscript", ["quality", "B", "--solvers", "euler", "--baseline", "euler:\u00b2"], "--baseline must be SOLVER:STEPS"),
    ("quality-baseline-full-width", ["quality", "B", "--solvers", "euler", "--baseline", "euler:\uff12\uff15\uff10"],
     "--baseline must be SOLVER:STEPS"),
]


def tree(root: Path) -> dict[str, str]:
    """Every file and folder under root with a hash of its content: what 'nothing changed' compares."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_symlink() or p.is_fifo():  # the symlink-loop, build-link and FIFO fixtures: compared as what they are
            out[rel] = f"link -> {os.readlink(p)}" if p.is_symlink() else "fifo"
            continue
        if p.name.endswith(".lock") and p.stat().st_size == 0:
            continue  # build-folder lock files (files.py) are created on first use by design
        out[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def tamper(src: Path, dst: Path, how: str) -> None:
    import shutil

    shutil.copytree(src, dst)
    m = json.loads((dst / "manifest.json").read_text())
    if how == "shape":
        m["graphs"]["encoder"]["outputs"][0]["shape"][-1] += 1
        m.pop("digest", None)
    elif how == "null":
        m["model"]["null_class"] = 3
    elif how == "format":
        m["format"] = 99
    elif how == "types":
        m["sampler"]["num_steps"] = "forty"
        m.pop("digest", None)
    elif how == "bytes":
        data = bytearray((dst / "decoder.onnx").read_bytes())
        data[-1] ^= 1
        (dst / "decoder.onnx").write_bytes(bytes(data))
    elif how == "missing":
        (dst / "decoder.onnx").unlink()
    nested = "[" * 65 + "]" * 65  # one level past files.MAX_JSON_DEPTH, inside an otherwise valid manifest
    raw = {"json": b"{not json", "deep": b"[" * 200_000, "latin1": b'{"format": "\xe9"}',
           "bigint": json.dumps(m)[:-1].encode() + b', "x": ' + b"9" * 5000 + b"}",
           "depth65": json.dumps(m)[:-1].encode() + b', "x": ' + nested.encode() + b"}"}
    (dst / "manifest.json").write_bytes(raw[how] if how in raw else json.dumps(m).encode())


@pytest.fixture(scope="module")
def scratch(built, official, tmp_path_factory) -> Path:
    import shutil

    import torch

    root = tmp_path_factory.mktemp("bad-input")
    shutil.copytree(built, root / "B")
    for how in ("shape", "null", "bytes", "json", "format", "missing", "types", "deep", "depth65", "bigint", "latin1"):
        tamper(built, root / f"T_{how}", how)
    (root / "mine").mkdir()
    (root / "mine" / "app.js").write_text("console.log('keep me')\n")
    (root / "fake").mkdir()
    (root / "fake" / "manifest.json").write_text('{"manifest_version": 3}')
    (root / "fake" / "app.js").write_text("x\n")
    (root / "notes.txt").write_text("not a build\n")
    shutil.copy(official.config, root / "c.yaml")
    shutil.copy(official.ckpt, root / "e.ckpt")
    ckpt = official.ckpt.read_bytes()
    (root / "truncated.ckpt").write_bytes(ckpt[: len(ckpt) // 2])
    (root / "empty.ckpt").write_bytes(b"")
    (root / "random.ckpt").write_bytes(np.random.default_rng(0).bytes(4096))
    text = official.config.read_text()
    (root / "binary.yaml").write_bytes(b"\x00\xff\xfe" * 100)
    (root / "truncated.yaml").write_text(text[: len(text) // 2] + "\n  - [unclosed")
    (root / "forty.yaml").write_text(text.replace("num_steps: 12", "num_steps: forty"))
    (root / "hidden_list.yaml").write_text(text.replace("hidden_size: &hidden_dim 64", "hidden_size: &hidden_dim [64, 64]"))
    (root / "null_float.yaml").write_text(text.replace("null_class: 10", "null_class: 1.5"))
    (root / "guidance_nan.yaml").write_text(text.replace("guidance: 3.0", "guidance: .nan"))
    (root / "tag.yaml").write_text("model: !!python/object/apply:os.system ['echo pwned']\n")
    (root / "list.yaml").write_text("- a\n- b\n")
    assert "num_steps: 12" in text and "hidden_size: &hidden_dim 64" in text and "null_class: 10" in text and "guidance: 3.0" in text
    noise = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(0)).numpy()
    np.save(root / "noise.npy", noise)
    np.save(root / "noise2.npy", np.concatenate([noise, noise]))
    np.save(root / "noise_bad_shape.npy", noise[:, :2])
    np.save(root / "noise_nan.npy", np.where(noise > 0, np.nan, noise).astype(np.float32))
    np.save(root / "noise_int.npy", noise.astype(np.int64))
    np.save(root / "pickled.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    sim = np.eye(4, dtype=np.float32) * 0.5 + 0.5
    np.save(root / "sim.npy", sim)
    np.save(root / "sim_nan.npy", np.where(sim > 0.7, np.nan, sim))
    np.save(root / "sim_2001.npy", np.zeros((2001, 2001), np.float16))
    with open(root / "sim_big.npy", "wb") as f:  # the header of a 4000 x 4000 matrix: refused before its data is read
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (4000, 4000)})
        f.write(b"\0" * 64)
    with open(root / "noise_big.npy", "wb") as f:  # the header of a 40 GB noise array: refused before its data is read
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (10_000, 4, 512, 512)})
    np.save(root / "noise_huge.npy", np.full((1, 4, 8, 8), 1e30, np.float32))
    os.symlink("loop", root / "loop")  # a symlink to itself
    os.symlink("B", root / "Blink")
    os.symlink("B/manifest.json", root / "mlink.npy")  # a file name that leads into the build
    os.mkfifo(root / "fifo.npy")
    os.mkfifo(root / "fifo.yaml")
    (root / "d").mkdir()
    (root / "deep").mkdir()  # a folder above an output whose manifest.json is 200,000 '[': not a build, and no crash
    (root / "deep" / "manifest.json").write_text("[" * 200_000)
    (root / "deep_names.json").write_text("[" * 200_000)
    (root / "names_bigint.json").write_text("[" + "9" * 5000 + "]")
    for job, text in (("job_deep", b"[" * 200_000), ("job_latin1", b"\xff\xfe{"), ("job_list", b'{"key": [1]}')):
        (root / job).mkdir()
        (root / job / "job.json").write_bytes(text)
    (root / "deep.yaml").write_text("model: " + "[" * 200_000)
    (root / "theirs").mkdir()
    np.savez(root / "theirs" / "samples.npz", arr_0=np.zeros((1, 2, 2, 3), np.uint8))  # a user's own samples: never overwritten
    return root


def run_cli(entry, args, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["prog", *args])
    with pytest.raises(SystemExit) as e:
        entry()
    out, err = capsys.readouterr()
    return e.value.code, out, err


def assert_refused(code, out, err, words):
    lines = err.strip().splitlines()
    assert code == 2, (code, out, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err and "internal error" not in err
    assert words in lines[0], lines[0]


@pytest.mark.parametrize("args,words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_ddt_export_refuses(scratch, monkeypatch, capsys, args, words):
    from ddt_export.cli import main

    monkeypatch.chdir(scratch)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    before = tree(scratch)
    assert_refused(*run_cli(main, args, monkeypatch, capsys), words)
    assert tree(scratch) == before


@pytest.mark.parametrize("args,words", [c[1:] for c in BENCH], ids=[c[0] for c in BENCH])
def test_ddt_bench_refuses(scratch, monkeypatch, capsys, args, words):
    from ddt_export.bench.cli import main as bench_main

    monkeypatch.chdir(scratch)
    before = tree(scratch)
    assert_refused(*run_cli(bench_main, args, monkeypatch, capsys), words)
    assert tree(scratch) == before


def number_options() -> list[tuple[str, str, str, type]]:
    """Every int and float option of ddt-export and ddt-bench as (program, command, --option, type), read off the apps'
    own signatures, so an option added later joins the table below without anyone remembering to add it."""
    import inspect
    import typing

    import typer

    from ddt_export.bench.cli import app as bench_app
    from ddt_export.cli import app

    out = []
    for prog, application in (("ddt-export", app), ("ddt-bench", bench_app)):
        for command in application.registered_commands:
            name = command.name or command.callback.__name__.replace("_", "-")
            hints = typing.get_type_hints(command.callback)
            for param, p in inspect.signature(command.callback).parameters.items():
                kind = ([t for t in typing.get_args(hints[param]) if t is not type(None)] or [hints[param]])[0]  # Optional[int]
                if kind in (int, float) and isinstance(p.default, typer.models.OptionInfo):
                    flags = [d for d in p.default.param_decls if d.startswith("--")] or ["--" + param.replace("_", "-")]
                    out.append((prog, name, flags[0], kind))
    return out


NUMBERS = [(*o, text) for o in number_options() for text in ("1_0", "\uff11")]  # click's int and float read both as numbers


@pytest.mark.parametrize("prog,command,option,kind,text", NUMBERS, ids=[f"{n[1]}{n[2]}-{n[4].encode('unicode_escape').decode()}"
                                                                        for n in NUMBERS])
def test_every_number_option_reads_one_grammar(scratch, monkeypatch, capsys, prog, command, option, kind, text):
    """`--steps 1_0` ran 10 steps: every int option is labels.py's whole number, every float option decimals.py's decimal,
    refused while the command line is read (before a build is opened: the positional arguments can be left out)."""
    from ddt_export.bench.cli import main as bench_main
    from ddt_export.cli import main

    monkeypatch.chdir(scratch)
    before = tree(scratch)
    words = f"{option} must be a {'whole' if kind is int else 'decimal'} number of ASCII digits"
    assert_refused(*run_cli(main if prog == "ddt-export" else bench_main, [command, option, text], monkeypatch, capsys), words)
    assert tree(scratch) == before


def test_the_number_table_holds_every_command():
    commands = {(n[0], n[1]) for n in NUMBERS}
    assert {("ddt-export", c) for c in ("build", "generate", "calibrate", "schedule", "demo", "sample", "check", "engines")} <= commands
    assert {("ddt-bench", c) for c in ("latency", "quality", "precision")} <= commands
    assert {("float", "--cfg"), ("float", "--cpus-per-worker"), ("int", "--port"), ("int", "--budget")} <= {(n[3].__name__, n[2]) for n in NUMBERS}


@pytest.mark.parametrize("prog,command", sorted({n[:2] for n in NUMBERS}))
def test_help_still_names_the_number_types(monkeypatch, capsys, prog, command):
    """The parsers change how numbers are read, not what --help says: each number option still shows its type
    (<int>/<float> on typer 0.29, which reads the annotation; INTEGER/FLOAT before, from the parser's name)."""
    from ddt_export.bench.cli import main as bench_main
    from ddt_export.cli import main

    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = run_cli(main if prog == "ddt-export" else bench_main, [command, "--help"], monkeypatch, capsys)
    assert code == 0
    for p, c, option, kind, text in NUMBERS:
        if (p, c) == (prog, command) and text == "1_0":
            want = ("<int>", "INTEGER") if kind is int else ("<float>", "FLOAT")
            assert any(f"{option} {w}" in out for w in want), (option, out)


def test_the_table_is_large():
    assert len(CASES) + len(BENCH) >= 100
