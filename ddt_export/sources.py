"""Where a build's model comes from: the bundled digits model, a named preset, or an official config.

The bundled model ships as an official-layout YAML plus safetensors, so it loads through
exactly the path users' own checkpoints take.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .errors import DDTError
from .config import ARCHITECTURES, RESOLUTIONS, preset
from .model import DDT, init_random
from .official import ModelSource, load_weights, read_config, read_weights
from .sampler import SamplerSettings

BUNDLED_DIR = Path(__file__).parent / "bundled"
BUNDLED_CONFIG = BUNDLED_DIR / "digits.yaml"
BUNDLED_WEIGHTS = BUNDLED_DIR / "digits.safetensors"
# The official ImageNet configs' sampler (configs/repa_improved_ddt_xlen22de6_{256,512}.yaml).
OFFICIAL_SAMPLER = SamplerSettings(num_steps=250, guidance=2.0, interval_min=0.3, interval_max=1.0, timeshift=1.0, last_step=0.04)
CHECKPOINT_HINT = (
    "the official DDT-XL/2 checkpoints (MCG-NJU/DDT-XL-22en6de-R256 and -R512 on Hugging Face), downloaded to a local path"
)


def preset_source(name: str, res: int) -> ModelSource:
    if name not in ARCHITECTURES:
        raise DDTError(f"unknown preset {name!r}; choose one of {', '.join(ARCHITECTURES)}")
    if res <= 0 or res % 16:
        raise DDTError(f"resolution {res} is not a multiple of 16; use 256 or 512 (or a config for other sizes)")
    if res not in RESOLUTIONS:
        raise DDTError(f"preset resolutions are {' and '.join(map(str, RESOLUTIONS))}; use --config for {res}")
    arch = preset(name, res)
    return ModelSource(name=f"ddt-{name}-{res}", arch=arch, null_class=arch.num_classes, sampler=OFFICIAL_SAMPLER)


def resolve(
    *,
    preset_name: str | None = None,
    res: int | None = None,
    config: Path | None = None,
    ckpt: Path | None = None,
    random_weights: bool = False,
    ema: bool = True,
    trust: bool = False,
) -> tuple[ModelSource, Callable[[], tuple[DDT, str]]]:
    """(source, load) for `ddt-export build`: every option checked and the config read now; `load()` reads the
    weights later and returns (model, where the weights came from), so the build folder is checked in between."""
    if config is not None and (preset_name is not None or res is not None):
        raise DDTError("give either --config or --preset/--res, not both")
    if config is None and preset_name is None and res is None:
        if ckpt is not None or random_weights:
            raise DDTError("--ckpt and --random-weights need --preset/--res or --config; with no model options the bundled digits model is built")
        if not BUNDLED_CONFIG.is_file():
            raise DDTError(f"the bundled model is missing from {BUNDLED_DIR}; reinstall ddt-export")
        src = read_config(BUNDLED_CONFIG)
        return src, lambda: (load_weights(DDT(src.arch), read_weights(BUNDLED_WEIGHTS), "bundled digits model"), "bundled")
    src = read_config(config) if config is not None else preset_source(preset_name or "xl", 256 if res is None else res)
    if ckpt is None and not random_weights:
        raise DDTError(f"no weights: pass --ckpt PATH ({CHECKPOINT_HINT}), or --random-weights for benchmarking")
    if ckpt is not None and random_weights:
        raise DDTError("give either --ckpt or --random-weights, not both")
    if random_weights:
        return src, lambda: (init_random(DDT(src.arch)), "random")
    if not Path(ckpt).is_file():
        read_weights(ckpt)  # the one-line error for a missing file or a folder, before any work
    return src, lambda: (load_weights(DDT(src.arch), read_weights(ckpt, ema=ema, trust=trust), str(ckpt)), str(ckpt))
