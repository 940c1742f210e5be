"""`pipe(labels, ...)`: the diffusers-style call: names or ids in, PIL images (or uint8 arrays, or latents) out, with the
run's timing and encoder calls; `generate` and `images` unchanged beside it."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ddt_export import Pipeline
from ddt_export.errors import DDTError


@pytest.fixture(scope="module")
def digits(bundled_build) -> Pipeline:
    return Pipeline.load(bundled_build, "onnxruntime")


def test_call_by_name_gives_pil_images_equal_to_generate_by_id(digits):
    out = digits(["seven", 1], seed=3, num_steps=4)
    assert out.labels == (7, 1) and len(out.images) == 2
    assert all(isinstance(im, Image.Image) and im.size == (16, 16) and im.mode == "RGB" for im in out.images)
    want = digits.images(digits.generate([7, 1], seed=3, num_steps=4).latents)
    assert np.array_equal(np.stack([np.asarray(im) for im in out.images]), want)


def test_output_types(digits):
    latents = digits.generate([2], seed=0, num_steps=3).latents
    arr = digits("two", seed=0, num_steps=3, output_type="np").images
    assert arr.dtype == np.uint8 and arr.shape == (1, 16, 16, 3) and np.array_equal(arr, digits.images(latents))
    lat = digits([2], seed=0, num_steps=3, output_type="latent").images
    assert lat.dtype == np.float32 and np.array_equal(lat, latents)
    with pytest.raises(DDTError, match="output_type must be one of pil, np, latent"):
        digits([2], output_type="pt")


def test_the_output_counts_encoder_calls_and_times_the_run(digits):
    out = digits(["one"] * 3, seed=0, num_steps=8, sharing_ratio=0.5, schedule="uniform")
    assert out.encoder_calls == 4 and out.result.recompute == [0, 2, 4, 6]
    assert out.seconds > 0 and out.seconds_per_image == pytest.approx(out.seconds / 3) and out.calibration_seconds >= 0


def test_bad_labels_fail_before_sampling(digits):
    with pytest.raises(DDTError, match='no class is named "sevn"; closest: seven'):
        digits(["sevn"], num_steps=2)
    with pytest.raises(DDTError, match="label 12 is outside"):
        digits([12], num_steps=2)


def test_a_latent_build_without_vae_gives_latents_and_refuses_images_up_front(built):
    pipe = Pipeline.load(built, "onnxruntime")
    with pytest.raises(DDTError, match="no VAE decoder"):
        pipe([1], num_steps=2)
    out = pipe([1], num_steps=2, output_type="latent")
    assert out.images.shape == (1, 4, 8, 8)
