"""Each provider's names for a scheduler, and the native scheduler each runs as.

Only the providers' endpoints (server/compat/) read these names; the native names they map to are
the wire protocol's (`latentcast.wire.SCHEDULERS`), built in server/engine/schedulers.py.
docs/compatibility.md ("Schedulers") says why each name maps where it does.
"""

from __future__ import annotations

from typing import Literal

from latentcast.wire import SchedulerName

# Segmind's `scheduler` values (provider-docs 003 lists eleven "+19 more": the thirty sampler names
# of the AUTOMATIC1111 web UI, which the eleven shown belong to). SDE and ancestral samplers get
# their deterministic counterpart: SD3's pipeline passes no generator to the scheduler, so noise
# injected per step would no longer be fixed by the seed.
SEGMIND_SCHEDULERS: dict[str, SchedulerName] = {
    "Euler": "flow_match_euler",
    "Euler a": "flow_match_euler",
    "DDIM": "flow_match_euler",
    "LMS": "dpmpp_3m",
    "PLMS": "dpmpp_3m",
    "Heun": "dpmpp_2m_heun",
    "Restart": "dpmpp_2m_heun",
    "DPM2": "dpmpp_2s",
    "DPM2 a": "dpmpp_2s",
    "DPM++ 2S a": "dpmpp_2s",
    "DPM++ SDE": "dpmpp_2s",
    "DPM fast": "dpmpp_2s",
    "DPM adaptive": "dpmpp_2s",
    "DPM++ 2M": "dpmpp_2m",
    "DPM++ 2M SDE": "dpmpp_2m",
    "DPM++ 2M SDE Heun": "dpmpp_2m_heun",
    "DPM++ 3M SDE": "dpmpp_3m",
    "UniPC": "unipc",
    "LMS Karras": "flow_match_euler_karras",
    "DPM2 Karras": "flow_match_euler_karras",
    "DPM2 a Karras": "flow_match_euler_karras",
    "DPM++ 2S a Karras": "flow_match_euler_karras",
    "DPM++ SDE Karras": "flow_match_euler_karras",
    "DPM++ 2M Karras": "flow_match_euler_karras",
    "DPM++ 2M SDE Karras": "flow_match_euler_karras",
    "DPM++ 2M SDE Heun Karras": "flow_match_euler_karras",
    "DPM++ 3M SDE Karras": "flow_match_euler_karras",
    "DPM++ 2M SDE Exponential": "flow_match_euler_exponential",
    "DPM++ 2M SDE Heun Exponential": "flow_match_euler_exponential",
    "DPM++ 3M SDE Exponential": "flow_match_euler_exponential",
}
SEGMIND_DEFAULT_SCHEDULER = "DPM++ 2M"

# Wiro's `scheduler` values: diffusers class names.
WiroScheduler = Literal["FlowMatchEulerDiscreteScheduler", "DPMSolverMultistepScheduler", "UniPCMultistepScheduler"]
WIRO_SCHEDULERS: dict[WiroScheduler, SchedulerName] = {
    "FlowMatchEulerDiscreteScheduler": "flow_match_euler",
    "DPMSolverMultistepScheduler": "dpmpp_2m",
    "UniPCMultistepScheduler": "unipc",
}
