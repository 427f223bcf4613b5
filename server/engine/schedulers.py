"""Per-task schedulers: the flow-matching configuration behind each `TaskParams.scheduler` name.

SD3 is a rectified-flow model: its transformer predicts a velocity and its sampler walks the flow
sigmas from 1 to 0. Only solvers that do exactly that fit it, so every name a task or a provider
may send (`latentcast.wire.SCHEDULERS`, and each provider's aliases in server/compat/schedulers.py)
resolves to one of these diffusers configurations, all on the model's own (shifted) flow sigmas:

  flow_match_euler              FlowMatchEulerDiscreteScheduler (every SD3 checkpoint's own)
  flow_match_euler_karras       FlowMatchEulerDiscreteScheduler, use_karras_sigmas
  flow_match_euler_exponential  FlowMatchEulerDiscreteScheduler, use_exponential_sigmas
  dpmpp_2m                      DPMSolverMultistepScheduler, dpmsolver++, order 2, midpoint
  dpmpp_2m_heun                 DPMSolverMultistepScheduler, dpmsolver++, order 2, heun
  dpmpp_3m                      DPMSolverMultistepScheduler, dpmsolver++, order 3
  dpmpp_2s                      DPMSolverSinglestepScheduler, dpmsolver++, order 2
  unipc                         UniPCMultistepScheduler

Karras and exponential spacing exist on flow sigmas only in FlowMatchEuler: the DPM-Solver
family's Karras path builds VP sigmas (above 1, NaN under flow prediction) and UniPC's ignores
the shift. Every configuration makes one model evaluation per step, so a task reports exactly
`num_inference_steps` steps and previews; FlowMatchHeun (two evaluations, 2n-1 step callbacks)
and the stochastic solvers (the pipeline passes no generator to `scheduler.step`, so a seed
would no longer fix the image) are left out, and so is DEIS (in flow mode its last sigma repeats
instead of reaching 0, leaving noise in the image). docs/compatibility.md ("Schedulers") has the
table of provider names.

Each task builds its scheduler afresh from the model's own config; a task that asks for nothing
gets the model's own scheduler object back, so one task's choice never leaks into the next.
"""

from __future__ import annotations

import weakref
from typing import Any

# (each from its own module: mypy takes diffusers' top-level names for its no-torch placeholders)
from diffusers.schedulers.scheduling_dpmsolver_multistep import DPMSolverMultistepScheduler
from diffusers.schedulers.scheduling_dpmsolver_singlestep import DPMSolverSinglestepScheduler
from diffusers.schedulers.scheduling_flow_match_euler_discrete import FlowMatchEulerDiscreteScheduler
from diffusers.schedulers.scheduling_unipc_multistep import UniPCMultistepScheduler

from latentcast.wire import DEFAULT_SCHEDULER, SCHEDULERS, SchedulerName

# FlowMatchEuler's sigma spacing per name; the model's own config is kept for everything else.
_EULER_SPACING: dict[str, dict[str, bool]] = {
    "flow_match_euler": {},
    "flow_match_euler_karras": {"use_karras_sigmas": True},
    "flow_match_euler_exponential": {"use_exponential_sigmas": True},
}

# The other solvers: (class, its settings beyond the flow sigmas every one of them walks).
_SOLVERS: dict[str, tuple[type, dict[str, Any]]] = {
    "dpmpp_2m": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "dpmpp_2m_heun": (
        DPMSolverMultistepScheduler,
        {"algorithm_type": "dpmsolver++", "solver_order": 2, "solver_type": "heun"},
    ),
    "dpmpp_3m": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 3}),
    # lower_order_final: what diffusers switches to anyway with flow sigmas' final sigma of zero
    "dpmpp_2s": (
        DPMSolverSinglestepScheduler,
        {"algorithm_type": "dpmsolver++", "solver_order": 2, "lower_order_final": True},
    ),
    "unipc": (UniPCMultistepScheduler, {}),
}

# The scheduler each pipeline was loaded with, kept before the first task replaces it.
_own: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def configure_scheduler(pipe: Any, name: SchedulerName | None, shift: float | None) -> None:
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
    if name in _EULER_SPACING:
        settings: dict[str, Any] = dict(_EULER_SPACING[name])
        if shift is not None:
            # an explicit shift replaces resolution-dependent shifting, where a model has it
            settings.update(shift=shift, use_dynamic_shifting=False)
        return FlowMatchEulerDiscreteScheduler.from_config(config, **settings)
    cls, settings = _SOLVERS[name]
    return cls(
        num_train_timesteps=config.get("num_train_timesteps", 1000),
        use_flow_sigmas=True,
        prediction_type="flow_prediction",
        flow_shift=float(config.get("shift", 3.0)) if shift is None else shift,
        **settings,
    )
