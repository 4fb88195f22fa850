"""Where a job may write: the allowed folders, minus the program's own files inside them.

The allowed folders (`tokenflow serve --allow-output DIR`, repeatable) add to the defaults
(the user's home folder and DATA/outputs); `--allow-output-only` makes them the only ones.
Inside any allowed folder, the server's own files are never a destination: the data folder
(job store, stored frames, trash; its `outputs/` folder excepted), the inversion cache, the
settings and keys, the socket folder (issue 20, item 14). An output, a batch summary or any
other file the server writes for a job is checked against both (`permits`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bridge import folders
from bridge.media.output_safety import is_under
from server.paths import DataDir


class RootsError(ValueError):
    """An --allow-output folder the server may not use; the message says which and why."""


@dataclass(frozen=True)
class OutputRoots:
    allowed: tuple[Path, ...]  # resolved
    private: tuple[Path, ...]  # resolved; never written, except inside an allowed folder that lies within

    def private_folder_of(self, path: Path) -> Path | None:
        """The private folder `path` (resolved) lies in, unless an allowed folder inside it holds it."""
        for folder in self.private:
            if is_under(path, [folder]):
                if any(is_under(root, [folder]) and is_under(path, [root]) for root in self.allowed):
                    continue  # DATA/outputs: the one public part of the data folder
                return folder
        return None

    def permits(self, path: Path) -> bool:
        """`path` (any links followed) is under an allowed folder and not among the server's own files."""
        real = Path(path).resolve()
        return is_under(real, self.allowed) and self.private_folder_of(real) is None


def private_folders(data: DataDir, cache_dir: Path | None = None, curve_dir: Path | None = None) -> tuple[Path, ...]:
    """The server's own files: its data folder, the inversion cache, settings, keys and socket folders."""
    found: list[Path] = [data.root, *folders.app_folders()]
    found += [p for p in (cache_dir, curve_dir) if p is not None]
    return tuple(dict.fromkeys(Path(p).expanduser().resolve() for p in found))


def allowed_output_dirs(data: DataDir, extra: Sequence[Path] = (), only: bool = False,
                        private: Iterable[Path] = ()) -> tuple[Path, ...]:
    """The defaults (home, DATA/outputs) plus `extra`; with `only`, `extra` alone.

    Refuses an extra folder inside the server's own files (other than DATA/outputs): the
    server would then overwrite its own store or keys on a client's request.
    """
    if only and not extra:
        raise RootsError("--allow-output-only needs at least one --allow-output DIR.")
    given = tuple(Path(p).expanduser().resolve() for p in extra)
    outputs = data.outputs.resolve()
    for folder in given:
        for own in private:
            if is_under(folder, [own]) and not is_under(folder, [outputs]):
                raise RootsError(f"--allow-output {folder} is inside {own}, the server's own files "
                                 f"(job store, cache, keys); outputs may go to {outputs} there, nowhere else.")
    defaults = () if only else (Path.home().resolve(), outputs)
    return tuple(dict.fromkeys((*defaults, *given)))
