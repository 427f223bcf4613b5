"""Each scheduler name builds its flow-matching configuration, and each runs the real pipeline
(the builtin model) with one step callback per step, a finite image, and a seed that fixes it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latentcast.server.compat.schedulers import SEGMIND_SCHEDULERS, WIRO_SCHEDULERS
from latentcast.server.engine.loader import LoadedModel
from latentcast.server.engine.schedulers import build_scheduler, configure_scheduler
from latentcast.wire import SCHEDULERS

# name -> (diffusers class, the settings that make it that configuration)
EXPECTED = {
    "flow_match_euler": ("FlowMatchEulerDiscreteScheduler", {"use_karras_sigmas": False}),
    "flow_match_euler_karras": ("FlowMatchEulerDiscreteScheduler", {"use_karras_sigmas": True}),
    "flow_match_euler_exponential": ("FlowMatchEulerDiscreteScheduler", {"use_exponential_sigmas": True}),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {"solver_order": 2, "solver_type": "midpoint"}),
    "dpmpp_2m_heun": ("DPMSolverMultistepScheduler", {"solver_order": 2, "solver_type": "heun"}),
    "dpmpp_3m": ("DPMSolverMultistepScheduler", {"solver_order": 3}),
    "dpmpp_2s": ("DPMSolverSinglestepScheduler", {"solver_order": 2}),
    "unipc": ("UniPCMultistepScheduler", {}),
}


def test_every_name_has_a_configuration_and_every_provider_name_a_native_one() -> None:
    assert set(EXPECTED) == set(SCHEDULERS)
    assert set(SEGMIND_SCHEDULERS.values()) <= set(SCHEDULERS)
    assert set(WIRO_SCHEDULERS.values()) <= set(SCHEDULERS)


@pytest.mark.parametrize("name", SCHEDULERS)
def test_each_name_walks_flow_sigmas_with_the_models_shift(tiny: LoadedModel, name: str) -> None:
    own = tiny.pipe.scheduler.config
    scheduler = build_scheduler(name, own, None)
    cls, settings = EXPECTED[name]
    assert type(scheduler).__name__ == cls
    assert {key: scheduler.config[key] for key in settings} == settings
    if cls != "FlowMatchEulerDiscreteScheduler":
        assert (scheduler.config.use_flow_sigmas, scheduler.config.prediction_type) == (True, "flow_prediction")
        assert scheduler.config.flow_shift == own.shift == 3.0
    scheduler.set_timesteps(8)
    sigmas = scheduler.sigmas.numpy()
    # from (almost) pure noise down to zero, never above 1: flow sigmas, not VP ones
    assert np.isfinite(sigmas).all() and 0.9 < sigmas[0] <= 1.0 and sigmas[-1] == 0.0
    assert (np.diff(sigmas) < 0).all()


def test_karras_and_exponential_spacing_change_the_steps_not_the_range(tiny: LoadedModel) -> None:
    own = tiny.pipe.scheduler.config
    spaced = {}
    for name in ("flow_match_euler", "flow_match_euler_karras", "flow_match_euler_exponential"):
        scheduler = build_scheduler(name, own, None)
        scheduler.set_timesteps(8)
        spaced[name] = scheduler.sigmas.numpy()
    plain = spaced["flow_match_euler"]
    for name in ("flow_match_euler_karras", "flow_match_euler_exponential"):
        assert spaced[name][0] == pytest.approx(plain[0]) and spaced[name][-2] == pytest.approx(plain[-2], rel=1e-4)
        assert not np.allclose(spaced[name], plain)
        # both spend more of the steps at low noise than the model's own spacing
        assert spaced[name][4] < plain[4]


def test_an_explicit_shift_reaches_every_solver(tiny: LoadedModel) -> None:
    own = tiny.pipe.scheduler.config
    for name in SCHEDULERS:
        scheduler = build_scheduler(name, own, 6.0)
        assert scheduler.config.get("shift", scheduler.config.get("flow_shift")) == 6.0, name


def test_an_unknown_name_lists_the_known_ones(tiny: LoadedModel) -> None:
    with pytest.raises(ValueError, match="unknown scheduler 'DPM\\+\\+ 2M'; use one of flow_match_euler, "):
        build_scheduler("DPM++ 2M", tiny.pipe.scheduler.config, None)


def _generate(tiny: LoadedModel, name: str, steps: int, seed: int) -> tuple[np.ndarray, int]:
    configure_scheduler(tiny.pipe, name, None)
    calls: list[int] = []

    def on_step(pipe: object, i: int, t: object, tensors: dict) -> dict:
        calls.append(i)
        return {}

    image = tiny.pipe(
        "a lighthouse at dusk", num_inference_steps=steps, width=64, height=64, output_type="np",
        generator=torch.Generator().manual_seed(seed), callback_on_step_end=on_step,
    ).images[0]
    configure_scheduler(tiny.pipe, None, None)
    return image, len(calls)


@pytest.mark.parametrize("name", SCHEDULERS)
def test_each_scheduler_runs_the_pipeline_one_callback_per_step(tiny: LoadedModel, name: str) -> None:
    for steps in (1, 2, 3, 4):
        image, callbacks = _generate(tiny, name, steps, seed=5)
        assert callbacks == steps, f"{name} at {steps} steps"
        assert np.isfinite(image).all() and image.std() > 0
    again, _ = _generate(tiny, name, 4, seed=5)
    other, _ = _generate(tiny, name, 4, seed=6)
    assert np.array_equal(image, again), "the seed fixes the image (no stochastic step)"
    assert not np.array_equal(image, other)
