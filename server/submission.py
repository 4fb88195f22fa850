"""Checking a submitted job against the world before it is accepted.

Everything that can be known at submit time is checked here, so a job that is
accepted fails later only for reasons nobody could see coming (a file deleted, the GPU
out of memory): the input exists and is a video, the range lies inside the clip, the
parameters make an `EditParams`, the model is one this server offers, the output is
under an allowed folder and writable. The result is the *resolved* spec the store
keeps: absolute paths and explicit frame numbers, so a restart runs the same job.
"""

from __future__ import annotations

import os
import typing
from pathlib import Path

from bridge import media
from bridge.media.matte import SOURCE_ALPHA, check_matte
from bridge.media.output_safety import OutputRefused, check_output, check_path_text, existing_outputs, target_of
from bridge.wire import naming
from bridge.wire.edit_params import BY_NAME, ParamsError, complete
from bridge.wire.matte_ref import matte_upload
from bridge.wire.naming import prompt_outputs
from bridge.wire.protocol import JobSpec
from server import upload_matte, upload_source
from server.bounds import disk_problem, estimate, memory, memory_problem
from server.client_scope import OwnersOf, foreign_files, may_read
from server.config import ServerConfig
from server.probe_request import not_a_file
from server.resolved_job import LOCAL_OWNER, ResolvedJob, SourceInfo
from server.uploads import UploadError, Uploads
from tokenflow.params import EditParams


class SubmitError(Exception):
    def __init__(self, code: str, message: str, hint: str = "", field: str | None = None):
        super().__init__(message)
        self.code, self.message, self.hint, self.field = code, message, hint, field


def edit_params(raw: dict) -> EditParams:
    """EditParams from wire values: unknown names, wrong types and values out of range are refused
    by name, in the sentences of the one table (bridge/wire/edit_params.py)."""
    try:
        return EditParams(**complete(raw))
    except ParamsError as exc:
        if exc.name not in BY_NAME:
            hint = f"Known: {', '.join(sorted(BY_NAME))}."
        elif exc.name not in raw:
            hint = f"Set params.{exc.name}: {BY_NAME[exc.name].meaning}."
        else:
            hint = ""  # the code's hint (server/service.py)
        raise SubmitError("bad_params", str(exc), hint, f"body.spec.params.{exc.name}") from None


def _check_output(output: str, config: ServerConfig, **kw: typing.Any) -> None:
    """The output policy with this server's folders: allowed ones, and its own files never."""
    roots = config.output_roots
    check_output(output, allowed=roots.allowed, allow_hint=allow_hint(config),
                 private_folder_of=roots.private_folder_of, **kw)


def allow_hint(config: ServerConfig) -> str:
    where = ", ".join(str(d) for d in config.allowed_output_dirs)
    return (f"Write under one of: {where}; or start the server with --allow-output DIR to let it write "
            "to another folder.")


def check_job_output(spec: ResolvedJob, config: ServerConfig, own: tuple[str, ...] = (),
                     owners_of: OwnersOf | None = None) -> None:
    """The output policy (bridge.media.output_safety) for a resolved spec, every prompt's output
    of it; raises OutputRefused."""
    for output in spec.outputs:
        _check_output(output, config, source=spec.input, overwrite=spec.overwrite, own=own, preset=spec.preset)
        if spec.overwrite:
            _check_replaces_own(output, spec.preset, spec.owner, owners_of, own)


def _check_replaces_own(output: str, preset: typing.Any, owner: str, owners_of: OwnersOf | None,
                        own: typing.Collection[str] = ()) -> None:
    """`overwrite` replaces only what this client's own jobs wrote (server/client_scope.py)."""
    existing = [path for path in existing_outputs(output, preset) if str(path) not in own]
    foreign = foreign_files(existing, owner, owners_of)
    if foreign:
        raise OutputRefused("output_exists", f"{foreign[0]} already exists and was not written by a job of this "
                            "client; overwrite replaces only this client's own outputs.",
                            "Choose another output name or folder.")


def input_hint(config: ServerConfig) -> str:
    where = ", ".join(str(d) for d in config.input_roots.allowed)
    return (f"Clients of this server read inputs under: {where} (the server's --allow-input); copy the clip "
            "there, or ask the server's owner.")




def _allowed_output(output: str, config: ServerConfig, where: str) -> None:
    if not config.output_roots.permits(Path(output)):
        raise SubmitError(
            "output_not_allowed", f"The server may not write to {output}.",
            "Write under one of: " + ", ".join(str(d) for d in config.allowed_output_dirs)
            + " (the server's --allow-output).", where,
        )


def free_output(folder: Path, name: str, preset: str, reserved: typing.Callable[[str], bool],
                prompts: typing.Sequence[str] = ("",)) -> str:
    """folder/NAME.mov (a movie) or folder/NAME/NAME_%06d.png (a sequence): the first of NAME,
    NAME_2, ... that is neither on disk nor `reserved` (another job's output), nor is any of the
    outputs it makes for several `prompts` (bridge/wire/naming.py, `prompt_outputs`)."""
    chosen = media.get_preset(preset)

    def taken(out: str) -> bool:
        path = Path(out)
        return reserved(out) or (path.parent if "%" in path.name else path).exists()

    for n in range(1, 100_000):
        candidate = name if n == 1 else f"{name}_{n}"
        if chosen.is_movie:
            path = folder / f"{candidate}{chosen.extension}"
            out = str(path)
        else:
            path = folder / candidate
            out = str(path / f"{candidate}_%06d{chosen.extension}")
        if not path.exists() and not reserved(out) and not any(taken(each) for each in prompt_outputs(out, prompts)):
            return out
    raise SubmitError("output_exists", f"Every name like {name} is taken in {folder}.",
                      "Choose another destination or name template.", "body.spec.destination")


def _output_name(spec: JobSpec, job_id: str, source: Path, first: int, last: int, params: dict,
                 config: ServerConfig) -> tuple[Path, str]:
    """(destination folder, NAME from the template) for a queued job."""
    where = "body.spec.destination"
    folder = Path(spec.destination or "").expanduser()
    if not folder.is_absolute():
        raise SubmitError("bad_field", f"The destination {spec.destination!r} is relative.",
                          "Send an absolute folder on the server's machine.", where)
    if folder.exists() and not folder.is_dir():
        raise SubmitError("bad_field", f"The destination {folder} is a file, not a folder.",
                          "Give a folder for the outputs.", where)
    # Several prompts: each output adds its own prompt (naming.variant_outputs), not the first's.
    prompt = None if params.get("variants") else params["prompt"]
    values = {"clip": spec.name or source.stem, "first": first, "last": last, "prompt": prompt,
              "seed": params["seed"], "job": job_id, "batch": spec.batch or "", "row": spec.row or 0}
    try:
        name = naming.render(spec.name_template or naming.DEFAULT_TEMPLATE, values)
    except naming.TemplateError as exc:
        raise SubmitError("bad_field", str(exc), "", "body.spec.name_template") from None
    folder = Path(os.path.normpath(folder))
    _allowed_output(str(folder / name), config, where)
    return folder, name


def _check_matte(matte: str, source: Path, first: int, last: int, pix_fmt: str | None, uploaded: bool,
                 config: ServerConfig, owner: str, uploads: Uploads | None) -> tuple[Path, str] | None:
    """The matte, like the input, is read from the server's disk: absolute, there, readable by
    `owner` (server/client_scope.py), covering the range. An uploaded matte (or an uploaded
    source's alpha) is checked by server/upload_matte.py; returns (folder, digest) of a matte upload."""
    where = "body.spec.params.matte"
    upload_id = matte_upload(matte)
    try:
        if upload_id is not None:
            return upload_matte.check(upload_id, uploads, owner, first, last)
        if matte == SOURCE_ALPHA and uploaded:
            upload_matte.check_source_alpha(upload_source.description(source))
            return None
    except UploadError as exc:
        raise SubmitError(exc.code, exc.message, exc.hint, where) from None
    if matte != SOURCE_ALPHA:
        try:
            check_path_text(matte, "matte")
        except OutputRefused as exc:
            raise SubmitError(exc.code, exc.message, exc.hint, where) from None
        if not Path(matte).is_absolute():
            raise SubmitError("bad_field", f"The matte path {matte!r} is relative.",
                              "Send an absolute path on the server's machine, or \"alpha\".", where)
        if not may_read(owner, matte, config.input_roots):  # before existence: no oracle
            raise SubmitError("input_not_allowed", f"This server does not let this client read {matte}.",
                              input_hint(config), where)
    try:
        check_matte(matte, source, first, last, pix_fmt)
    except media.MediaError as exc:
        raise SubmitError("not_found" if "does not exist" in str(exc) else "media_error", str(exc),
                          "The server reads the matte from its own disk.", where) from None
    return None


def _file_input(spec: JobSpec, config: ServerConfig, owner: str) -> tuple[Path, media.ClipInfo]:
    """(path, clip facts) of the input file, if `owner` may read it (server/client_scope.py)."""
    try:
        check_path_text(spec.input, "input")
    except OutputRefused as exc:
        raise SubmitError(exc.code, exc.message, exc.hint, "body.spec.input") from None
    source = Path(spec.input).expanduser()
    if not source.is_absolute():
        raise SubmitError("bad_field", f"The input path {spec.input!r} is relative.",
                          "Send an absolute path on the server's machine.", "body.spec.input")
    if not may_read(owner, source, config.input_roots):  # before existence: no oracle
        raise SubmitError("input_not_allowed", f"This server does not let this client read {source}.",
                          input_hint(config), "body.spec.input")
    problem = not_a_file(source)
    if problem:
        raise SubmitError(*problem, "body.spec.input")
    try:
        return source, media.probe(source)
    except media.MediaError as exc:
        raise SubmitError("media_error", str(exc), "", "body.spec.input") from None


def upload_input(spec: JobSpec, uploads: Uploads | None, owner: str) -> tuple[Path, media.ClipInfo, int, int, str]:
    """(folder, clip facts, first, last, digest) of the complete upload a spec names."""
    if uploads is None or spec.upload is None:
        raise SubmitError("unknown_upload", "This server takes no uploads here.", "Submit a file path instead.",
                          "body.spec.upload")
    try:
        desc, folder, digest = uploads.source(spec.upload, owner)
    except UploadError as exc:
        code = "unknown_upload" if exc.code == "forbidden" else exc.code  # another client's upload is not there
        raise SubmitError(code, exc.message, exc.hint, "body.spec.upload") from None
    if desc.channels == 1:
        raise SubmitError("bad_field", f"Upload {spec.upload} has one channel: a matte, not a picture to edit.",
                          "Upload the source as RGB or RGBA (channels 3 or 4); a one-channel upload is a matte, "
                          "named in params.matte as \"upload:ID\".", "body.spec.upload")
    try:
        first, last = upload_source.frame_range(spec.frames, desc)
    except upload_source.RangeError as exc:
        raise SubmitError("bad_range", str(exc), "", "body.spec.frames") from None
    return folder, upload_source.clip_info(desc, folder), first, last, digest


def resolve(spec: JobSpec, job_id: str, config: ServerConfig,
            reserved: typing.Callable[[str], bool] = lambda output: False,
            uploads: Uploads | None = None, owner: str = LOCAL_OWNER,
            owners_of: OwnersOf | None = None) -> ResolvedJob:
    """The checked, explicit spec the store keeps. `reserved(output)`: whether another job will
    write that output; a named output (destination + template) takes the first free name.
    `uploads`: where a spec naming an upload finds it (server/uploads.py). `owner`: who submits;
    `owners_of`: who wrote a file (server/client_scope.py: what a client may read and replace)."""
    digest = None
    if spec.upload is not None:
        source, info, first, last, digest = upload_input(spec, uploads, owner)
    else:
        source, info = _file_input(spec, config, owner)
        try:
            first, last = media.parse_frame_range(spec.frames, info.frame_count)
        except media.MediaError as exc:
            raise SubmitError("bad_range", str(exc), "", "body.spec.frames") from None
    n_frames = last - first + 1
    if n_frames > config.limits.max_frames:
        raise SubmitError("bad_range", f"{n_frames} frames exceed this server's limit of {config.limits.max_frames}.",
                          "Submit a shorter --frames range, or several jobs.", "body.spec.frames")

    params = edit_params(spec.params)
    matte = None
    if params.matte:
        matte = _check_matte(params.matte, source, first, last, info.pix_fmt, spec.upload is not None, config, owner,
                             uploads)
    model = spec.model or config.default_model
    if model not in config.models:
        raise SubmitError("unknown_model", f"This server does not offer model {model!r}.",
                          f"Pick one of: {', '.join(config.models)}.", "body.spec.model")

    try:
        preset = media.resolve_preset(spec.preset)
    except media.MediaError as exc:
        raise SubmitError("bad_format", str(exc), "List the presets with `tokenflow formats`.", "body.spec.preset") from None
    destination = None
    if spec.output:
        text = spec.output.replace("{job}", job_id)
        try:
            check_path_text(text, "output")
        except OutputRefused as exc:
            raise SubmitError(exc.code, exc.message, exc.hint, "body.spec.output") from None
        as_folder = text.endswith(("/", os.sep))  # "folder/" means an image sequence there
        expanded = Path(text).expanduser()
        if not expanded.is_absolute():
            raise SubmitError("bad_field", f"The output path {spec.output!r} is relative.",
                              "Send an absolute path on the server's machine.", "body.spec.output")
        output = os.path.normpath(expanded) + (os.sep if as_folder else "")
    elif spec.destination:
        destination, output_name = _output_name(spec, job_id, source, first, last, params.to_dict(), config)
        output = free_output(destination, output_name, (preset or media.get_preset("h264")).name, reserved,
                             params.prompts)
    else:
        output = media.default_output(config.data.outputs / job_id / source.name, preset)
    # Several prompts: one output each (docs/protocol.md, "Several prompts in one job"), every one
    # checked as a lone output is, so one that exists refuses the job before anything runs.
    outputs = prompt_outputs(output, params.prompts)
    out_spec = [_check_one_output(each, source, info, preset, spec, first, n_frames, owner, owners_of, config)
                for each in outputs][0]  # the format is the same for every prompt's output
    return _resolved(spec, job_id, source, info, first, last, n_frames, output, model, params, preset, out_spec,
                     destination, digest, matte, config)


def _check_one_output(output: str, source: Path, info: media.ClipInfo, preset: typing.Any, spec: JobSpec, first: int,
                      n_frames: int, owner: str, owners_of: OwnersOf | None,
                      config: ServerConfig) -> media.OutputSpec:
    """Every check of one output path; returns its parsed form. Raises SubmitError naming body.spec.output."""
    try:
        # First: the input itself, an escape from the allowed folders, a link (output_safety).
        _check_output(output, config, source=source, overwrite=spec.overwrite, preset=preset)
    except OutputRefused as exc:
        raise SubmitError(exc.code, exc.message, exc.hint, "body.spec.output") from None
    except media.MediaError:
        pass  # a path that is no output at all: said more precisely just below
    try:
        media.parse_output_spec(output)  # the path itself, whatever the preset
    except media.MediaError as exc:
        raise SubmitError("output_not_writable", str(exc), "", "body.spec.output") from None
    try:
        out_spec = media.parse_output_spec(output, preset)
        media.writers.check_size(out_spec.preset, (info.width, info.height))
    except media.MediaError as exc:
        raise SubmitError("bad_format", str(exc), "List the presets with `tokenflow formats`.", "body.spec.preset") from None
    try:
        media.check_output_writable(output, preset)
    except media.MediaError as exc:
        raise SubmitError("output_not_writable", str(exc), "", "body.spec.output") from None
    number = first if spec.start_number is None else spec.start_number
    if spec.overwrite:
        try:
            _check_replaces_own(output, preset, owner, owners_of)
        except OutputRefused as exc:
            raise SubmitError(exc.code, exc.message, exc.hint, "body.spec.output") from None
    if not spec.overwrite:
        try:
            media.writers.check_not_existing(media.writers.sequence_paths(out_spec, number, n_frames))
        except media.MediaError as exc:
            raise SubmitError("output_exists", str(exc), "Choose another name, or pass --overwrite "
                              "(overwrite: true) to replace it.", "body.spec.output") from None
    return out_spec


def _resolved(spec: JobSpec, job_id: str, source: Path, info: media.ClipInfo, first: int, last: int, n_frames: int,
              output: str, model: str, params: EditParams, preset: typing.Any, out_spec: media.OutputSpec,
              destination: Path | None, digest: str | None, matte: tuple[Path, str] | None,
              config: ServerConfig) -> ResolvedJob:
    """The resolved spec, once its memory and disk needs are known to fit."""
    resolved = ResolvedJob(
        input=str(source), frames=spec.frames, first=first, last=last, n_frames=n_frames, output=output,
        model=model, params=params.to_dict(), proxy_size=spec.proxy_size, proxy_format=spec.proxy_format,
        priority=spec.priority, client_token=spec.client_token, overwrite=spec.overwrite,
        preset=out_spec.preset.name, start_number=spec.start_number, audio=spec.audio,
        source=SourceInfo(width=info.width, height=info.height, frame_rate=str(info.frame_rate)),
        destination=str(destination) if destination else spec.destination, name_template=spec.name_template,
        name=spec.name or source.stem, batch=spec.batch, row=spec.row, batch_jobs=spec.batch_jobs,
        upload=spec.upload, upload_digest=digest,
        matte_input=str(matte[0]) if matte else None, matte_digest=matte[1] if matte else None,
    )
    kind, target = target_of(output, preset)

    prompts = len(params.prompts)
    needs = estimate(n_frames, info.width, info.height, params.short_side, params.steps, kind, params.batch_size,
                     prompts)
    problem = memory_problem(memory(n_frames, info.width, info.height, params.short_side, params.steps,
                                    params.batch_size, prompts), info.width, info.height, params.short_side)
    if problem:
        raise SubmitError("bad_range", problem, "Several shorter jobs together do what one long job would.",
                          "body.spec.frames")
    problem = disk_problem(needs, config.data.root, config.cache_dir, target.parent if kind == "movie" else target,
                           config.free_space)
    if problem:
        raise SubmitError("disk_full", problem, "Free some space (`tokenflow jobs delete ID` removes what the server "
                          "stored for a finished job), or submit a shorter range.", "body.spec.frames")
    return resolved
