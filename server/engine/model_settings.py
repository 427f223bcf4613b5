"""What a model folder says about itself beyond diffusers' own configs: `latentcast.json`.

A model trained here knows things the pipeline's configs have no field for: how many T5 tokens it
was trained to read, and the latent -> RGB factors fitted to its own VAE for the `latent2rgb`
preview. Folders without the file (real SD3 weights) get SD3's values.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

FILE_NAME = "latentcast.json"
SD3_MAX_SEQUENCE_LENGTH = 256  # the pipeline's default

# SD3's latent -> RGB approximation (ComfyUI, comfy/latent_formats.py, class SD3): one row per latent
# channel, fitted on the model-space latents (`(z - shift) * scale`) that diffusers' SD3 pipeline
# denoises, giving RGB in [-1, 1].
SD3_LATENT_RGB_FACTORS = (
    (-0.0922, -0.0175, 0.0749),
    (0.0311, 0.0633, 0.0954),
    (0.1994, 0.0927, 0.0458),
    (0.0856, 0.0339, 0.0902),
    (0.0587, 0.0272, -0.0496),
    (-0.0006, 0.1104, 0.0309),
    (0.0978, 0.0306, 0.0427),
    (-0.0042, 0.1038, 0.1358),
    (-0.0194, 0.0020, 0.0669),
    (-0.0488, 0.0130, -0.0268),
    (0.0922, 0.0988, 0.0951),
    (-0.0278, 0.0524, -0.0542),
    (0.0332, 0.0456, 0.0895),
    (-0.0069, -0.0030, -0.0810),
    (-0.0596, -0.0465, -0.0293),
    (-0.1448, -0.1463, -0.1189),
)
SD3_LATENT_RGB_BIAS = (0.2394, 0.2135, 0.1925)


@dataclasses.dataclass(frozen=True, slots=True)
class ModelSettings:
    max_sequence_length: int = SD3_MAX_SEQUENCE_LENGTH
    latent_rgb_factors: tuple[tuple[float, float, float], ...] = SD3_LATENT_RGB_FACTORS
    latent_rgb_bias: tuple[float, float, float] = SD3_LATENT_RGB_BIAS

    @classmethod
    def read(cls, folder: Path) -> ModelSettings:
        path = Path(folder) / FILE_NAME
        if not path.is_file():
            return cls()
        fields = json.loads(path.read_text())
        return cls(
            max_sequence_length=int(fields.get("max_sequence_length", SD3_MAX_SEQUENCE_LENGTH)),
            latent_rgb_factors=tuple(tuple(row) for row in fields.get("latent_rgb_factors", SD3_LATENT_RGB_FACTORS)),
            latent_rgb_bias=tuple(fields.get("latent_rgb_bias", SD3_LATENT_RGB_BIAS)),
        )

    def write(self, folder: Path) -> None:
        (Path(folder) / FILE_NAME).write_text(json.dumps(dataclasses.asdict(self), indent=1) + "\n")
