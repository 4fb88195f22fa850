"""Refuse at submit a job the GPU cannot hold (tokenflow/gpu_memory.py has the estimate).

Applies only when the job's model is the one loaded, on a CUDA device: the estimate
needs the model's shape and the card's size, and on a CPU the host-memory check in
server/bounds.py is the one that applies. A model not loaded yet is checked when a later
job finds it loaded; an engine that does not expose its model (a remote one) is not checked.
"""

from __future__ import annotations

from server.bounds import working_dims
from server.engine_host import EngineHost, EngineView
from server.resolved_job import ResolvedJob
from server.submission import SubmitError

HINT = "Lower what the message names, or split the clip into several jobs (shorter --frames ranges)."


def check(engines: EngineView, job: ResolvedJob) -> None:
    # A cluster's engines live on other machines: their GPUs are not measured here.
    if not isinstance(engines, EngineHost):
        return
    if job.source is None or not engines.loaded(job.model) or not engines.device.startswith("cuda"):
        return
    model = getattr(engines.get(job.model), "model", None)
    if model is None:
        return
    from tokenflow.gpu_memory import job_problem

    params = job.edit_params()
    from tokenflow.family import native_short_side

    family = getattr(model, "family", None)
    short_side = native_short_side(family, params.short_side) if family is not None else params.short_side
    size = working_dims(job.source.width, job.source.height, short_side)
    problem = job_problem(model, size, job.n_frames, params.steps, params.batch_size, params.max_joint_keyframes,
                          len(params.variants))
    if problem:
        raise SubmitError("bad_range", problem, HINT, "body.spec.frames")
