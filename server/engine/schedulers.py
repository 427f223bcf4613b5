"""Per-task schedulers: the flow-matching solvers a task may ask for (`TaskParams.scheduler`/`shift`).

SD3 is a rectified-flow model: its transformer predicts a velocity and its sampler walks the flow
sigmas from 1 to 0. Only solvers that do exactly that fit it. Tried on the builtin model, 40 steps,
against FlowMatchEuler's result (same ODE, so a good solver lands close to it):

  flow_match_euler  FlowMatchEulerDiscreteScheduler (every SD3 checkpoint's own)        -
  dpmpp_2m          DPMSolverMultistepScheduler, dpmsolver++ order 2, flow sigmas       0.7 %
  unipc             UniPCMultistepScheduler, flow sigmas                                0.8 %

Left out on purpose: DPMSolver with Karras sigmas (its Karras path ignores the flow sigmas and
gives NaN), SA-Solver and the other stochastic samplers (the pipeline passes no generator to
`scheduler.step`, so a seed would no longer fix the image), and FlowMatchHeun (two model
evaluations per step, 2n-1 step callbacks: step events and previews count one per step).

Each task builds its scheduler afresh from the model's own config; a task that asks for nothing
gets the model's own scheduler object back, so one task's choice never leaks into the next.
"""

from __future__ import annotations

import weakref
from typing import Any

from diffusers import DPMSolverMultistepScheduler, FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler

SCHEDULERS = ("flow_match_euler", "dpmpp_2m", "unipc")
DEFAULT_SCHEDULER = "flow_match_euler"

# The scheduler each pipeline was loaded with, kept before the first task replaces it.
_own: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def configure_scheduler(pipe: Any, name: str | None, shift: float | None) -> None:
    """Give `pipe` the scheduler `name` (None: the default) with `shift` (None: the model's own)."""
    own = _own.setdefault(pipe, pipe.scheduler)
    name = name or DEFAULT_SCHEDULER
    if name == DEFAULT_SCHEDULER and shift is None:
        pipe.scheduler = own
    else:
        pipe.scheduler = build_scheduler(name, own.config, shift)


def build_scheduler(name: str, config: Any, shift: float | None) -> Any:
    """A new scheduler `name` for a model whose own scheduler has `config`."""
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; use one of {', '.join(SCHEDULERS)}")
    model_shift = float(config.get("shift", 3.0))
    if name == "flow_match_euler":
        if shift is None:
            return FlowMatchEulerDiscreteScheduler.from_config(config)
        # an explicit shift replaces resolution-dependent shifting, where a model has it
        return FlowMatchEulerDiscreteScheduler.from_config(config, shift=shift, use_dynamic_shifting=False)
    flow = {
        "num_train_timesteps": config.get("num_train_timesteps", 1000),
        "use_flow_sigmas": True,
        "prediction_type": "flow_prediction",
        "flow_shift": model_shift if shift is None else shift,
    }
    if name == "dpmpp_2m":
        return DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2, **flow)
    return UniPCMultistepScheduler(**flow)
