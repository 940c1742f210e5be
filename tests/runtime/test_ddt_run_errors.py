"""Bad input to `ddt-run`, table-driven: each case must exit 2 with exactly one line on stderr,
`error: ...` naming the problem, nothing on stdout, no crash, and the filesystem unchanged.

All cases run against one sandbox folder (a copy of the session's tiny build, tampered copies,
a file, a folder, noise files); it is snapshotted (every path, size, mode, mtime and content
hash) before and after each case.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from ddt_export.manifest import digest
from tests.conftest import seeded
from tests.runtime.conftest import run


@pytest.fixture(scope="module")
def sandbox(built, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ddt_run_errors")
    shutil.copytree(built, root / "build")
    # same size, different content: only the sha256 can tell
    shutil.copytree(built, root / "tampered")
    enc = bytearray((root / "tampered" / "encoder.onnx").read_bytes())
    enc[len(enc) // 2] ^= 0x01
    (root / "tampered" / "encoder.onnx").write_bytes(bytes(enc))
    shutil.copytree(built, root / "truncated")
    data = (root / "truncated" / "decoder.onnx").read_bytes()
    (root / "truncated" / "decoder.onnx").write_bytes(data[:-100])
    (root / "afile").write_text("not a folder\n")
    (root / "adir").mkdir()
    (root / "adir" / "kept.npy").write_bytes(b"keep me")
    np.save(root / "noise3.npy", seeded((3, 4, 8, 8), 0))
    np.save(root / "noise_shape.npy", seeded((2, 4, 4, 4), 0))
    np.save(root / "noise_nan.npy", np.full((1, 4, 8, 8), np.nan, np.float32))
    (root / "notnpy.npy").write_text("hello\n")
    # a header claiming 10^12 values in a tiny file: refused before any allocation
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000000), }"
    header += " " * (64 - (10 + len(header) + 1) % 64) + "\n"
    (root / "huge.npy").write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode())
    add_issue_26_inputs(root)
    return root


def npy_header(text: str, version: int = 1) -> bytes:
    """A .npy file's first bytes for this header dict (padded as numpy pads it), with no data after it."""
    size = 2 if version == 1 else 4
    text += " " * (64 - (8 + size + len(text) + 1) % 64) + "\n"
    return b"\x93NUMPY" + bytes([version, 0]) + len(text).to_bytes(size, "little") + text.encode()


def add_issue_26_inputs(root: Path) -> None:
    """Issue 26's inputs: noise that overflows the model, files that are not regular files (a FIFO must not block a read),
    symlinks (a loop, links into the build folder, a dangling one into it), headers past the size bounds."""
    np.save(root / "noise_1e30.npy", np.full((1, 4, 8, 8), 1e30, np.float32))
    os.mkfifo(root / "fifo.npy")
    os.symlink("loop.npy", root / "loop.npy")
    os.symlink("loopdir", root / "loopdir")
    os.symlink("build", root / "buildlink")
    os.symlink("build/new.npy", root / "dangling-into-build.npy")
    over = 1 << 28  # cli.MAX_NOISE_VALUES, plus one value
    (root / "over_2_28.npy").write_bytes(npy_header(f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({over + 1},), }}"))
    shutil.copytree(root / "build", root / "edited")  # a hand edit the files' hashes cannot see: the digest does
    data = json.loads((root / "edited" / "manifest.json").read_text())
    data["sampler"]["num_steps"] = 7
    (root / "edited" / "manifest.json").write_text(json.dumps(data, indent=2))
    shutil.copytree(root / "build", root / "escaping")  # a graph outside the build, the digest stamped again
    data = json.loads((root / "escaping" / "manifest.json").read_text())
    data["graphs"]["decoder"]["file"] = "../decoder.onnx"
    data["digest"] = digest(data)
    (root / "escaping" / "manifest.json").write_text(json.dumps(data, indent=2))
    (root / "long_header.npy").write_bytes(npy_header("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }" + " " * 20000, 2))


def snapshot(root: Path) -> dict:
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None
        out[str(p.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns if p.is_file() else None, digest)
    return out


B = "build"  # the sandbox's intact build
LABELS = ("--labels", "1")

# (id, argv after ddt-run, text the one error line must contain)
CASES = [
    # numbers that do not parse, or are not finite, or are out of range
    ("steps-word", [B, *LABELS, "--steps", "abc"], "--steps must be a whole number of ASCII digits, e.g. 1 (got 'abc')"),
    ("steps-exponent", [B, *LABELS, "--steps", "1e20"], "--steps must be a whole number of ASCII digits, e.g. 1 (got '1e20')"),
    ("steps-huge", [B, *LABELS, "--steps", "99999999999"], "--steps must be between 1 and 10000"),
    ("steps-zero", [B, *LABELS, "--steps", "0"], "--steps must be between 1 and 10000 (got 0)"),
    ("steps-negative", [B, *LABELS, "--steps", "-3"], "--steps must be between 1 and 10000 (got -3)"),
    ("steps-fraction", [B, *LABELS, "--steps", "2.5"], "--steps must be a whole number"),
    ("cfg-nan", [B, *LABELS, "--cfg", "nan"], "--cfg must be a finite number (got 'nan')"),
    ("cfg-inf", [B, *LABELS, "--cfg", "inf"], "--cfg must be a finite number (got 'inf')"),
    ("cfg-overflow", [B, *LABELS, "--cfg", "1e999"], "--cfg must be a finite number"),
    ("cfg-word", [B, *LABELS, "--cfg", "strong"], "--cfg must be a decimal number of ASCII digits, e.g. 4.0 (got 'strong')"),
    ("timeshift-nan", [B, *LABELS, "--timeshift", "nan"], "--timeshift must be a finite number"),
    ("timeshift-zero", [B, *LABELS, "--timeshift", "0"], "timeshift must be > 0 (got 0.0)"),
    ("interval-nan", [B, *LABELS, "--interval", "nan,1"], "--interval LO must be a finite number"),
    ("interval-inf", [B, *LABELS, "--interval", "0,inf"], "--interval HI must be a finite number"),
    ("interval-one", [B, *LABELS, "--interval", "0.5"], "--interval takes LO,HI"),
    ("interval-reversed", [B, *LABELS, "--interval", "0.9,0.1"], "guidance interval 0.9,0.1 is reversed"),
    ("last-step-nan", [B, *LABELS, "--last-step", "nan"], "--last-step must be a finite number"),
    ("last-step-out", [B, *LABELS, "--last-step", "1.5"], "last step must be in (0, 1) (got 1.5)"),
    ("ratio-nan", [B, *LABELS, "--sharing-ratio", "nan"], "--sharing-ratio must be a finite number"),
    ("ratio-one", [B, *LABELS, "--sharing-ratio", "1"], "sharing ratio must be in [0, 1) (got 1)"),
    ("seed-negative", [B, *LABELS, "--seed", "-1"], "--seed must be a whole number from 0 to 2^64 - 1 = 18446744073709551615 (got -1)"),
    ("seed-too-big", [B, *LABELS, "--seed", "18446744073709551616"], "from 0 to 2^64 - 1 = 18446744073709551615 (got 18446744073709551616)"),
    ("threads-zero", [B, *LABELS, "--threads", "0"], "--threads must be between 1 and 1024 (got 0)"),
    ("threads-huge", [B, *LABELS, "--threads", "99999"], "--threads must be between 1 and 1024"),
    # schedules
    ("schedule-unknown", [B, *LABELS, "--sharing-ratio", "0.5", "--schedule", "cosine"], "unknown schedule 'cosine'"),
    ("recompute-late-start", [B, *LABELS, "--recompute", "1,2"], "recompute list must start at step 0"),
    ("recompute-unsorted", [B, *LABELS, "--recompute", "0,5,3"], "recompute list must be strictly increasing"),
    ("recompute-huge", [B, *LABELS, "--recompute", "0,99999999999"], "--recompute entry must be between 0 and 9999"),
    ("recompute-word", [B, *LABELS, "--recompute", "0,x"], "--recompute must be comma-separated whole numbers"),
    ("recompute-past-end", [B, *LABELS, "--recompute", "0,12"], "recompute step 12 is out of range for 12 steps"),
    ("recompute-and-ratio", [B, *LABELS, "--recompute", "0", "--sharing-ratio", "0.5"], "either --recompute or --sharing-ratio"),
    ("dp-uncalibrated", [B, *LABELS, "--sharing-ratio", "0.5"], "no calibration for these sampler settings (12 steps"),
    ("dp-uncalibrated-adams", [B, *LABELS, "--sampler", "adams", "--order", "3", "--sharing-ratio", "0.5"],
     "--steps 12 --sampler adams --order 3` once"),
    # the sampler: Python's messages (SamplerSettings._validate_solver)
    ("sampler-unknown", [B, *LABELS, "--sampler", "heun"], "unknown sampler 'heun'; choose euler or adams"),
    ("sampler-empty", [B, *LABELS, "--sampler", ""], "unknown sampler ''; choose euler or adams"),
    ("order-five", [B, *LABELS, "--sampler", "adams", "--order", "5"], "order must be from 1 to 4 (got 5); the official Adams"),
    ("order-zero", [B, *LABELS, "--sampler", "adams", "--order", "0"], "order must be from 1 to 4 (got 0)"),
    ("order-without-adams", [B, *LABELS, "--order", "2"], "order 2 is for the Adams sampler (Euler is order 1); add --sampler adams"),
    ("order-word", [B, *LABELS, "--sampler", "adams", "--order", "two"], "--order must be a whole number of ASCII digits, e.g. 1 (got 'two')"),
    ("order-fraction", [B, *LABELS, "--sampler", "adams", "--order", "2.5"], "--order must be a whole number of ASCII digits, e.g. 1 (got '2.5')"),
    ("order-huge", [B, *LABELS, "--sampler", "adams", "--order", "99999999999"],  # Python's message for the same value
     "error: order must be from 1 to 4 (got 99999999999); the official Adams sampler goes to 4"),
    ("order-without-value", [B, *LABELS, "--order"], "option --order requires an argument"),
    # labels
    ("label-too-big", [B, "--labels", "12"], "label 12 is outside [0, 9] for this 10-class model (or 10, the null class"),
    ("label-negative", [B, "--labels", "3,-1"], "label -1 is outside [0, 9]"),
    ("label-word", [B, "--labels", "1,x"], "--labels must be comma-separated whole numbers"),
    ("labels-empty", [B, "--labels", ""], "give at least one label"),
    ("labels-too-many", [B, "--labels", ",".join(["1"] * 1025)], "--labels has more than 1024 entries"),
    ("labels-missing", [B], "missing option --labels"),
    # options
    ("unknown-flag", [B, *LABELS, "--frobnicate"], "no such option: --frobnicate"),
    ("short-flag", [B, *LABELS, "-x"], "no such option: -x"),
    ("flag-without-value", [B, *LABELS, "--steps"], "option --steps requires an argument"),
    ("switch-with-value", [B, *LABELS, "--json=yes"], "option --json takes no value"),
    ("two-builds", [B, "build", *LABELS], "got more than one BUILD_DIR"),
    ("seed-and-noise", [B, *LABELS, "--seed", "1", "--noise", "noise3.npy"], "give either --seed or --noise"),
    ("backend-unknown", [B, *LABELS, "--backend", "onnx"], "unknown backend 'onnx'"),
    ("backend-tensorrt", [B, *LABELS, "--backend", "tensorrt"], "compiled without TensorRT"),
    ("precision-unknown", [B, *LABELS, "--inference-precision", "fp8"], "unknown --inference-precision 'fp8'"),
    # builds
    ("build-missing", ["nowhere", *LABELS], "nowhere has no manifest.json: run `ddt-export build` to make one"),
    ("build-not-a-build", ["adir", *LABELS], "it is not a ddt-export build"),
    ("build-is-a-file", ["afile", *LABELS], "afile is a file, not a build folder"),
    ("build-tampered-same-size", ["tampered", *LABELS], "encoder.onnx does not match its sha256 in the manifest"),
    ("build-truncated", ["truncated", *LABELS], "decoder.onnx does not match its sha256 in the manifest"),
    # inputs and outputs
    ("noise-missing", [B, *LABELS, "--noise", "none.npy"], "cannot read noise none.npy: No such file or directory"),
    ("noise-folder", [B, *LABELS, "--noise", "adir"], "noise adir is a folder; give the file itself"),
    ("noise-not-npy", [B, *LABELS, "--noise", "notnpy.npy"], "not a .npy file"),
    ("noise-huge-header", [B, *LABELS, "--noise", "huge.npy"], "huge.npy"),
    ("noise-batch", [B, "--labels", "1,2", "--noise", "noise3.npy"], "noise has batch 3 but 2 labels were given"),
    ("noise-shape", [B, "--labels", "1,2", "--noise", "noise_shape.npy"], "noise has shape (2, 4, 4, 4), expected (2, 4, 8, 8)"),
    ("noise-nan", [B, *LABELS, "--noise", "noise_nan.npy"], "noise holds inf or nan"),
    ("save-to-folder", [B, *LABELS, "--save-latents", "adir"], "cannot write adir: it is a folder"),
    ("save-to-folder-slash", [B, *LABELS, "--save-latents", "adir/"], "it is a folder"),
    ("save-to-new-folder-slash", [B, *LABELS, "--save-latents", "newdir/"], "it names a folder (it ends in /)"),
    ("save-under-file", [B, *LABELS, "--save-latents", "afile/lat.npy"], "afile is a file, not a folder"),
    ("save-missing-folder", [B, *LABELS, "--save-latents", "no/such/lat.npy"], "folder no/such does not exist"),
    ("save-under-proc", [B, *LABELS, "--save-latents", "/proc/lat.npy"], "/proc is a system folder, not storage"),
    ("save-under-sys", [B, *LABELS, "--save-latents", "/sys/kernel/lat.npy"], "/sys/kernel is a system folder, not storage"),
    ("save-empty", [B, *LABELS, "--save-latents", ""], "--save-latents needs a file path"),
    # inputs: regular files only (a FIFO or a device must not block or never end), bounded headers
    ("noise-fifo", [B, *LABELS, "--noise", "fifo.npy"], "noise fifo.npy is not a regular file (a pipe, device or socket); save it"),
    ("noise-dev-zero", [B, *LABELS, "--noise", "/dev/zero"], "noise /dev/zero is not a regular file"),
    ("noise-symlink-loop", [B, *LABELS, "--noise", "loop.npy"], "cannot read noise loop.npy: Too many levels of symbolic links"),
    ("noise-long-name", [B, *LABELS, "--noise", "n" * 300 + ".npy"], "File name too long"),
    ("noise-over-2-28-values", [B, *LABELS, "--noise", "over_2_28.npy"], "holds more than the 268435456 values it may have"),
    ("noise-long-header", [B, *LABELS, "--noise", "long_header.npy"], "more than numpy reads (10000)"),
    # outputs: never inside a build folder (through a link or '..' too), no symlink loops or over-long names, .npy only
    ("save-into-build", [B, *LABELS, "--save-latents", "build/lat.npy"], "is inside the build folder"),
    ("save-into-build-dotdot", [B, *LABELS, "--save-latents", "adir/../build/lat.npy"], "is inside the build folder"),
    ("save-into-build-link", [B, *LABELS, "--save-latents", "buildlink/lat.npy"], "is inside the build folder"),
    ("save-dangling-link-into-build", [B, *LABELS, "--save-latents", "dangling-into-build.npy"], "is inside the build folder"),
    ("save-symlink-loop", [B, *LABELS, "--save-latents", "loop.npy"], "loop.npy: it is a symlink loop; point it at a real folder"),
    ("save-under-symlink-loop", [B, *LABELS, "--save-latents", "loopdir/lat.npy"], "it is a symlink loop"),
    ("save-long-name", [B, *LABELS, "--save-latents", "n" * 300 + ".npy"], "a file or folder name of 304 bytes, more than file systems hold (255)"),
    ("save-long-folder-name", [B, *LABELS, "--save-latents", "d" * 256 + "/lat.npy"], "a file or folder name of 256 bytes"),
    ("save-under-dev", [B, *LABELS, "--save-latents", "/dev/shm/lat.npy"], "/dev/shm is a system folder, not storage"),
    ("save-not-npy", [B, *LABELS, "--save-latents", "lat.txt"], "--save-latents lat.txt: expected a .npy file name"),
    # settings float32 cannot hold, refused before any work (finite.check_representable's messages)
    ("cfg-beyond-float32", [B, *LABELS, "--cfg", "1e39"], "guidance scale 1e+39 does not fit in float32 (at most 3.4e+38); use e.g. --cfg 3"),
    ("cfg-1e308", [B, *LABELS, "--cfg", "1e308"], "guidance scale 1e+308 does not fit in float32"),
    ("cfg-negative-beyond-float32", [B, *LABELS, "--cfg", "-1e39"], "guidance scale -1e+39 does not fit in float32"),
    ("timeshift-grid-overflows", [B, *LABELS, "--timeshift", "1e300"],
     "the time grid of 12 steps with timeshift 1e+300 is not finite in float32 (euler)"),
    ("timeshift-grid-underflows-adams", [B, *LABELS, "--timeshift", "1e-300", "--sampler", "adams", "--order", "4"],
     "the time grid of 12 steps with timeshift 1e-300 is not finite in float32 (adams)"),
    ("last-step-below-float32", [B, *LABELS, "--last-step", "1e-300"], "last step 1e-300 is below float32's resolution near t = 1"),
    ("last-step-1e-8", [B, *LABELS, "--last-step", "1e-8"], "last step 1e-08 is below float32's resolution"),
    # results that are not finite: named, nothing written, exit 2 (finite.blame's messages)
    ("result-huge-cfg", [B, *LABELS, "--steps", "4", "--cfg", "1e30", "--save-latents", "out.npy"],
     "the result is not finite: guidance scale (--cfg) 1e+30 made the guided velocity overflow float32 at step"),
    ("result-huge-noise", [B, *LABELS, "--steps", "3", "--noise", "noise_1e30.npy", "--save-latents", "out.npy"],
     "the result is not finite: the noise (values up to 1e+30; standard normal noise stays within ~6)"),
    # issue 26 (the C++ side of each Python class). The integer grammar of labels.py: ASCII digits, no '_', '+', other
    # digits or empty entries, at most 40 characters; seeds 0..2^64-1, never wrapped
    *((f"labels-{name}", [B, "--labels", text], "--labels must be comma-separated whole numbers of ASCII digits, e.g. 1,7 (got ")
      for name, text in [("underscore", "1_0"), ("full-width", "\uff11"), ("arabic-indic", "\u0661"), ("plus", "+1"), ("space-inside", "1 2"),
                         ("exponent", "1e3"), ("hex", "0x10"), ("superscript", "\u00b2"), ("41-digits", "9" * 41), ("nbsp", "1\u00a0"),
                         ("zero-width", "1\u200b")]),
    *((f"labels-empty-entry-{name}", [B, "--labels", text], f"--labels has an empty entry (got {text!r}); give comma-separated")
      for name, text in [("middle", "1,,2"), ("end", "1,"), ("start", ",1"), ("only-commas", ","), ("blank", "1, ,2")]),
    ("labels-beyond-64-bits", [B, "--labels", "9" * 40], f"label {'9' * 40} is outside [0, 9] for this 10-class model"),  # Python's
    ("labels-beyond-64-bits-among-names", [B, "--labels", "1;" + "9" * 20], f"label {'9' * 20} is outside [0, 9]"),
    # names (issue 23): this build has none, so a name is refused saying how to get them; ';' separates labels
    ("labels-name-without-names", [B, "--labels", "tabby"], "(got 'tabby'); this build has no class names, rebuild it with"),
    ("labels-empty-entry-semicolon", [B, "--labels", "1;;2"], "--labels has an empty entry (got '1;;2'); separate labels with ';'"),
    ("labels-big-but-64-bit", [B, "--labels", "99999999999"], "label 99999999999 is outside [0, 9]"),
    *((f"seed-{name}", [B, *LABELS, "--seed", text], f"--seed must be a whole number of ASCII digits, e.g. 0 (got {text!r})")
      for name, text in [("underscore", "1_0"), ("plus", "+1"), ("empty", ""), ("41-digits", "9" * 41), ("full-width", "\uff17"),
                         ("fraction", "1.0")]),
    ("seed-40-digits", [B, *LABELS, "--seed", "9" * 40], f"from 0 to 2^64 - 1 = 18446744073709551615 (got {'9' * 40})"),
    ("seed-minus-zero-padded", [B, *LABELS, "--seed", "-0001"], "(got -1)"),
    ("recompute-empty-entry", [B, *LABELS, "--recompute", "0,,3"], "--recompute has an empty entry (got '0,,3')"),
    ("recompute-underscore", [B, *LABELS, "--recompute", "0,1_0"], "--recompute must be comma-separated whole numbers of ASCII digits"),
    ("steps-underscore", [B, *LABELS, "--steps", "1_0"], "--steps must be a whole number of ASCII digits, e.g. 1 (got '1_0')"),
    ("steps-full-width", [B, *LABELS, "--steps", "\uff15"], "--steps must be a whole number of ASCII digits"),
    ("threads-underscore", [B, *LABELS, "--threads", "1_0"], "--threads must be a whole number of ASCII digits"),
    ("order-underscore", [B, *LABELS, "--sampler", "adams", "--order", "0_2"], "--order must be a whole number of ASCII digits"),
    ("order-huge-euler", [B, *LABELS, "--order", "99999999999"], "order must be from 1 to 4 (got 99999999999)"),
    ("order-64-bit-min", [B, *LABELS, "--sampler", "adams", "--order", str(-2**63)], f"order must be from 1 to 4 (got {-2**63})"),
    # paths inside a manifest: its digest, and only its hashed files (issue 26.4)
    ("build-manifest-edited", ["edited", *LABELS], "edited/manifest.json was edited by hand (its digest no longer matches)"),
    ("build-names-unhashed-file", ["escaping", *LABELS],
     "graphs.decoder.file names '../decoder.onnx', which is not one of the build's hashed files"),
    # no silent substitutions
    ("schedule-without-ratio", [B, *LABELS, "--schedule", "uniform"],
     "--schedule uniform picks the encoder's steps for a --sharing-ratio; add e.g. --sharing-ratio 0.75"),
]


def test_table_is_large_enough():
    assert len(CASES) >= 30 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("args,needle", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(sandbox, ddt_run, args, needle):  # noqa: F811
    before = snapshot(sandbox)
    result = run([ddt_run, *args], timeout=120, cwd=sandbox)
    lines = result.stderr.splitlines()
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], result.stderr[-2000:]
    assert result.stdout == ""
    assert snapshot(sandbox) == before, "the filesystem changed"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only-mode folders")
def test_unwritable_folder(sandbox, ddt_run, tmp_path):  # noqa: F811
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        result = run([ddt_run, sandbox / B, *LABELS, "--save-latents", locked / "lat.npy"], timeout=120)
        lines = result.stderr.splitlines()
        assert result.returncode == 2 and len(lines) == 1 and "is not writable" in lines[0], result.stderr
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


def test_good_input_writes_only_its_output(sandbox, ddt_run, tmp_path):  # noqa: F811
    """The null class is a label; the output is written atomically (no temporary file left), nothing else."""
    before = snapshot(sandbox)
    out = tmp_path / "lat.npy"
    result = run([ddt_run, B, "--labels", "10,3", "--steps", "3", "--save-latents", out, "--threads", "1", "--json"],
                 timeout=120, cwd=sandbox)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["samples"] == 2
    assert np.load(out).shape == (2, 4, 8, 8)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lat.npy"]
    assert snapshot(sandbox) == before


def test_libtorch_refuses_a_build_it_would_run_in_fp32(lt_build, ddt_run, tmp_path):  # noqa: F811
    """No silent substitution (issue 26.7): the LibTorch modules hold the fp32 weights, so an int8 build's samples would not
    be the build's; refused with one line, as the Python torch backend refuses it (its manifest re-stamped, so only the
    precision differs)."""
    from ddt_export.manifest import digest

    build = tmp_path / "int8"
    shutil.copytree(lt_build, build)
    data = json.loads((build / "manifest.json").read_text())
    data["precision"] = "int8"
    data["digest"] = digest(data)
    (build / "manifest.json").write_text(json.dumps(data, indent=2))
    result = run([ddt_run, build, *LABELS, "--backend", "libtorch", "--steps", "1"], timeout=120)
    lines = result.stderr.splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert "is a int8 build; the libtorch backend runs only its fp32 weights" in lines[0]
