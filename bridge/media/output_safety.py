"""Whether a job may write its output where it was asked to: the policy around the writers.

The writers (bridge.media.writers) make writing itself safe: hidden partial files,
staging folders, nothing half-written under a final name. This module decides, before
a job is queued and again when it starts writing, whether the target is acceptable
at all:

- the path is text a file system can take (no NUL byte, no over-long name);
- the output is not the input (same file by any path: hard link, symlink, `..`);
- it lies inside the allowed folders once *fully* resolved (the movie file or the
  sequence folder itself, not only its parent), and a movie's final name is not a
  symbolic link (a link inside an allowed folder pointing outside is refused);
- it does not replace files that exist already (a movie, or frames of the same
  sequence pattern in its folder) unless the user said `overwrite`;
- it is writable.

Each refusal is an `OutputRefused` with a wire error code and one sentence saying
what to do. Default output names are unique, so two prompts on one clip keep both.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path

from bridge.media.errors import MediaError
from bridge.media.presets import ExportPreset
from bridge.media.writers import check_output_writable, parse_output_spec

# PATH_MAX on Linux; a path longer than this cannot be opened at all.
MAX_PATH_BYTES = 4096
_FALLBACK_NAME_MAX = 255


class OutputRefused(MediaError):
    """`code` is the protocol's error code for it (output_exists, output_is_input, ...)."""

    def __init__(self, code: str, message: str, hint: str = ""):
        super().__init__(f"{message} {hint}".strip())
        self.code, self.message, self.hint = code, message, hint


def check_path_text(text: str, what: str) -> None:
    """Refuse a path no file system takes: a NUL byte, a name or a path too long."""
    if "\0" in text:
        raise OutputRefused("bad_field", f"The {what} path contains a NUL byte.",
                            "Remove the control character from the path.")
    raw = text.encode("utf-8", "surrogateescape")
    if len(raw) > MAX_PATH_BYTES:
        raise OutputRefused("bad_field", f"The {what} path is {len(raw)} bytes long; paths may be at most "
                            f"{MAX_PATH_BYTES} bytes.", "Use a shorter path.")
    limit = _name_max(Path(text))
    for part in Path(text).parts:
        size = len(part.encode("utf-8", "surrogateescape"))
        if size > limit:
            shown = part if len(part) <= 40 else part[:37] + "..."
            raise OutputRefused("bad_field", f"The name {shown!r} in the {what} path is {size} bytes long; this file "
                                f"system allows {limit}.", "Use a shorter file or folder name.")


def _name_max(path: Path) -> int:
    current = path if path.is_absolute() else Path.cwd() / path
    try:
        while not current.exists() and current != current.parent:
            current = current.parent
        return int(os.pathconf(current, "PC_NAME_MAX"))
    except (OSError, ValueError):
        return _FALLBACK_NAME_MAX


def target_of(out: str | Path, preset: str | ExportPreset | None = None) -> tuple[str, Path]:
    """(kind, the path that names the output: the movie file, or the sequence folder)."""
    spec = parse_output_spec(out, preset)
    if spec.kind == "images":
        return "images", spec.path.parent
    return "movie", spec.path


def is_under(path: Path, roots: Iterable[Path]) -> bool:
    """True if `path` (taken as given) lies under one of `roots` (each resolved)."""
    for root in roots:
        try:
            path.relative_to(Path(root).resolve())
            return True
        except ValueError:
            continue
    return False


def sequence_pattern(pattern: Path) -> re.Pattern[str]:
    """A regex matching every file name of a printf-style sequence pattern (any frame number)."""
    name = pattern.name.replace("%%", "\0")
    parts = re.split(r"%0?\d*d", name, maxsplit=1)
    if len(parts) != 2:
        return re.compile(re.escape(name.replace("\0", "%")) + r"\Z")
    head, tail = (re.escape(p.replace("\0", "%")) for p in parts)
    return re.compile(head + r"-?\d+" + tail + r"\Z")


def existing_outputs(out: str | Path, preset: str | ExportPreset | None = None) -> list[Path]:
    """Files the output would replace or mix with: the movie file, or frames of the same pattern."""
    spec = parse_output_spec(out, preset)
    if spec.kind != "images":
        return [spec.path] if os.path.lexists(spec.path) else []
    folder = spec.path.parent
    if not folder.is_dir():
        return []
    match = sequence_pattern(spec.path)
    return sorted(folder / name for name in os.listdir(folder) if match.match(name))


def check_output(
    out: str,
    *,
    source: str | Path | None,
    overwrite: bool = False,
    allowed: Sequence[Path] | None = None,
    own: Collection[str] = (),
    allow_hint: str = "",
    preset: str | ExportPreset | None = None,
    private_folder_of: Callable[[Path], Path | None] | None = None,
) -> None:
    """Refuse an output target the job must not write (see the module's list).

    `preset`: an export preset name or object (bridge.media.presets), as the writers take it.
    `allowed`: the folders outputs may go under (None: anywhere, as for `tokenflow
    edit`). `own`: outputs this job itself started to put in place (a re-run after a
    crash), which it may finish. `allow_hint`: how the user widens `allowed`.
    `private_folder_of(resolved target)`: the program's own folder the target lies in (a
    server's data folder, cache, keys), which no output may enter even inside `allowed`.
    """
    check_path_text(out, "output")
    kind, target = target_of(out, preset)
    real = target.resolve()  # every link followed, the final component included
    if allowed is not None and not is_under(real, allowed):
        where = ", ".join(str(d) for d in allowed)
        shown = f"{target} (which leads to {real})" if real != target.absolute() else str(target)
        raise OutputRefused("output_not_allowed", f"The output {shown} is outside the folders outputs may go to "
                            f"({where}).", allow_hint or f"Write under one of: {where}.")
    own_folder = private_folder_of(real) if private_folder_of is not None else None
    if own_folder is not None:
        raise OutputRefused("output_not_allowed", f"The output {target} is inside {own_folder}, where the server "
                            "keeps its own files (jobs, stored frames, cache, keys); outputs never go there.",
                            allow_hint or "Write somewhere else.")
    if kind == "movie" and target.is_symlink():
        raise OutputRefused("output_not_allowed", f"The output {target} is a symbolic link; outputs are never "
                            "written through links.", "Give the path of a real file or a new name.")
    if source is not None and kind == "movie" and os.path.exists(target):
        try:
            same = os.path.samefile(target, source)
        except OSError:
            same = False
        if same:
            raise OutputRefused("output_is_input", f"The output {target} is the input clip itself.",
                                "Choose another output name; the source is never overwritten.")
    if not overwrite:
        taken = [p for p in existing_outputs(out, preset) if str(p) not in own]
        if taken:
            if kind == "movie":
                raise OutputRefused("output_exists", f"The output {taken[0]} already exists and is not replaced.",
                                    "Choose another name, or pass --overwrite (overwrite: true) to replace it.")
            raise OutputRefused(
                "output_exists", f"The folder {target} already holds {len(taken)} file(s) of this sequence "
                f"(e.g. {taken[0].name}); they are not replaced.",
                "Choose an empty folder or another pattern, or pass --overwrite (overwrite: true) to replace them.")
    try:
        check_output_writable(out, preset)
    except OutputRefused:
        raise
    except MediaError as exc:
        raise OutputRefused("output_not_writable", str(exc)) from None


def next_free_output(default: str) -> str:
    """`default` if nothing has that name, else `NAME_2.EXT` (or `NAME_2/` for a sequence folder), `_3`, ...

    So a second prompt on the same clip keeps the first result instead of refusing
    or replacing it.
    """
    folder = default.endswith(("/", os.sep))
    path = Path(default.rstrip("/" + os.sep)) if folder else Path(default)
    if not os.path.lexists(path):
        return default
    stem, suffix = (path.name, "") if folder else (path.stem, path.suffix)
    n = 2
    while os.path.lexists(candidate := path.with_name(f"{stem}_{n}{suffix}")):
        n += 1
    return str(candidate) + (os.sep if folder else "")
