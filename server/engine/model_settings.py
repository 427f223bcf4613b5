"""What a model folder says about itself beyond diffusers' own configs: `latentcast.json`.

A model trained here knows things the pipeline's configs have no field for: how many T5 tokens it
was trained to read, and the latent -> RGB factors fitted to its own VAE for the `latent2rgb`
preview. Folders without the file (real SD3 weights) get SD3's values.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from latentcast.server.engine.previews import SD3_LATENT_RGB_BIAS, SD3_LATENT_RGB_FACTORS

FILE_NAME = "latentcast.json"
SD3_MAX_SEQUENCE_LENGTH = 256  # the pipeline's default


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
