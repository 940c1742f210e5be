"""A DDT's architecture: the config dataclass and the paper's named presets (torch-free).

The manifest, the graph specs and the FLOP counts read a config's numbers only, so this module
imports nothing heavy; model.py builds the network from it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class DDTConfig:
    """Architecture of one DDT, plus the latent size its graphs are built for."""

    in_channels: int = 4
    patch_size: int = 2
    hidden_size: int = 1152
    num_groups: int = 16  # attention heads
    num_blocks: int = 28  # encoder + decoder blocks
    num_encoder_blocks: int = 22
    num_classes: int = 1000  # the null (unconditional) class is index num_classes
    latent_size: int = 32  # H = W of the latent; resolution / 8 for the SD VAE

    def __post_init__(self) -> None:
        problems = []
        if self.latent_size % self.patch_size:
            problems.append(f"latent size {self.latent_size} is not a multiple of patch size {self.patch_size}")
        if self.hidden_size % self.num_groups or (self.hidden_size // self.num_groups) % 4:
            problems.append(
                f"hidden size {self.hidden_size} / {self.num_groups} heads must give a head size divisible by 4 (2-D RoPE)"
            )
        if not 0 < self.num_encoder_blocks < self.num_blocks:
            problems.append(
                f"num_encoder_blocks {self.num_encoder_blocks} must be in [1, num_blocks - 1] (num_blocks {self.num_blocks})"
            )
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def num_decoder_blocks(self) -> int:
        return self.num_blocks - self.num_encoder_blocks

    @property
    def num_tokens(self) -> int:
        return (self.latent_size // self.patch_size) ** 2

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_groups

    @property
    def mlp_hidden(self) -> int:
        return int(2 * (4 * self.hidden_size) / 3)  # SwiGLU keeps the 4x MLP's parameter count

    @property
    def null_class(self) -> int:
        return self.num_classes

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return (self.in_channels, self.latent_size, self.latent_size)

    def to_dict(self) -> dict:
        return asdict(self)


# Architectures of the paper (Table 1 / the official configs); resolution picks latent_size.
ARCHITECTURES: dict[str, DDTConfig] = {
    "xl": DDTConfig(hidden_size=1152, num_groups=16, num_blocks=28, num_encoder_blocks=22),
    "l": DDTConfig(hidden_size=1024, num_groups=16, num_blocks=24, num_encoder_blocks=20),
    "b": DDTConfig(hidden_size=768, num_groups=12, num_blocks=12, num_encoder_blocks=8),
}
RESOLUTIONS = (256, 512)


def preset(name: str, res: int = 256) -> DDTConfig:
    """A named architecture at an image resolution (latent = res / 8, the SD VAE's factor)."""
    if name not in ARCHITECTURES:
        raise KeyError(f"unknown preset {name!r}; choose one of {', '.join(ARCHITECTURES)}")
    if res % 16:
        raise ValueError(f"resolution {res} is not a multiple of 16 (latent / patch must be whole)")
    return replace(ARCHITECTURES[name], latent_size=res // 8)
