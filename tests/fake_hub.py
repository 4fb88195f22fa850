"""A Hugging Face hub stand-in on loopback, serving one model repository from a folder.

The real hub cannot be reached from the machines that run the tests, so `tokenflow
models pull` is exercised against this: the few HTTP routes huggingface_hub uses to
download a snapshot (model info, the file tree, HEAD and GET of each file with the
metadata headers the cache is keyed on, and Range requests for resuming). It records
every request so tests can see what was (and was not) fetched.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

COMMIT = "fedcba9876543210fedcba9876543210fedcba98"


class FakeHub:
    def __init__(self, repo_id: str, files: dict[str, bytes]):
        self.repo_id = repo_id
        self.files = files
        self.requests: list[tuple[str, str, str]] = []  # (method, path, Range header)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @classmethod
    def from_folder(cls, repo_id: str, folder: Path, extra: dict[str, bytes] | None = None) -> FakeHub:
        files = {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
        return cls(repo_id, {**files, **(extra or {})})

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def downloaded(self) -> set[str]:
        """Files whose content was fetched (GET on resolve)."""
        prefix = f"/{self.repo_id}/resolve/"
        return {p[len(prefix):].split("/", 1)[1] for m, p, _ in self.requests if m == "GET" and p.startswith(prefix)}

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep the test output clean
                pass

            def _json(self, data) -> None:
                body = json.dumps(data).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _route(self, head: bool) -> None:
                path = unquote(urlparse(self.path).path)
                hub.requests.append(("HEAD" if head else "GET", path, self.headers.get("Range", "")))
                repo = hub.repo_id
                if path in (f"/api/models/{repo}", f"/api/models/{repo}/revision/main",
                            f"/api/models/{repo}/revision/{COMMIT}"):
                    return self._json({"id": repo, "sha": COMMIT, "private": False,
                                       "siblings": [{"rfilename": f} for f in hub.files]})
                if path.startswith(f"/api/models/{repo}/tree/"):
                    return self._json([{"type": "file", "path": f, "size": len(b),
                                        "oid": hashlib.sha1(b).hexdigest()} for f, b in hub.files.items()])
                match = re.fullmatch(rf"/{re.escape(repo)}/resolve/([^/]+)/(.+)", path)
                if match and match.group(2) in hub.files:
                    return self._file(hub.files[match.group(2)], head)
                self.send_response(404)
                self.send_header("X-Error-Code", "RepoNotFound" if not path.startswith(f"/{repo}/") else "EntryNotFound")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _file(self, data: bytes, head: bool) -> None:
                start = 0
                ranged = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
                if ranged and not head:
                    start = int(ranged.group(1))
                self.send_response(206 if start else 200)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("Content-Length", str(len(data) - start))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if not head:
                    self.wfile.write(data[start:])

            def do_HEAD(self) -> None:
                self._route(head=True)

            def do_GET(self) -> None:
                self._route(head=False)

        return Handler
