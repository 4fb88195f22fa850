"""A `PanelLink` for tests that need no server: it records what the session asks and lets the
test answer with the link's own signals, as the real link would."""

from __future__ import annotations

from bridge.wire import protocol as p
from ui.link import PanelLink


class FakeLink(PanelLink):
    def __init__(self) -> None:
        super().__init__()
        self.submits: list[tuple[str, p.JobSpec]] = []  # (token, spec), in order
        self.watches: dict[str, int] = {}  # job -> from_seq
        self.asked: list[tuple[str, str]] = []  # (action, job) of cancel, reorder, status, retry, delete
        self.running = False

    def start(self) -> None:
        self.running = True
        self.connected.emit(p.Welcome(server="fake", server_id="fake", engine_state="ready"))

    def stop(self) -> None:
        self.running = False

    def submit(self, spec: p.JobSpec) -> str:
        token = spec.client_token or f"token{len(self.submits)}"
        self.submits.append((token, spec))
        return token

    def cancel(self, job: str) -> None:
        self.asked.append(("cancel", job))

    def reorder(self, job: str, position: int) -> None:
        self.asked.append(("reorder", job))

    def status(self, job: str) -> None:
        self.asked.append(("status", job))

    def retry(self, job: str) -> None:
        self.asked.append(("retry", job))

    def pause_queue(self, paused: bool) -> None:
        self.asked.append(("pause" if paused else "resume", ""))

    def delete(self, job: str) -> None:
        self.asked.append(("delete", job))

    def watching(self, job: str) -> bool:
        return job in self.watches

    def watch(self, job: str, from_seq: int = 1) -> None:
        self.watches.setdefault(job, from_seq)

    def fetch_frames(self, job: str, variant: int = 0) -> None:
        self.asked.append(("fetch", job if variant == 0 else f"{job}#{variant}"))
