"""A `tokenflow serve` this panel starts when none answers, with its log for the log dock."""

from __future__ import annotations

from collections import deque

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, Signal

from bridge.command import Launcher

LOG_LINES = 5000


class LocalServer(QObject):
    log_line = Signal(str)
    started = Signal()
    exited = Signal(str)  # plain words: why it stopped and what to do

    def __init__(self, endpoint: str, launcher: Launcher, parent: QObject | None = None):
        super().__init__(parent)
        self.endpoint = endpoint
        self.launcher = launcher
        self.lines: deque[str] = deque(maxlen=LOG_LINES)
        self.process: QProcess | None = None
        self._stopping = False

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning

    def start(self) -> None:
        if self.running:
            return
        command = self.launcher("serve", "--bind", self.endpoint)
        program, args = command.executable, command.argv[1:]
        self._stopping = False
        proc = QProcess(self)
        proc.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        proc.readyReadStandardOutput.connect(self._read)
        proc.finished.connect(self._finished)
        proc.errorOccurred.connect(self._error)
        env = QProcessEnvironment()
        for key, value in command.environment().items():
            env.insert(key, value)
        proc.setProcessEnvironment(env)
        self.process = proc
        self._add(f"$ {program} {' '.join(args)}")
        proc.start(program, args)
        self.started.emit()

    def stop(self, wait_ms: int = 15000) -> None:
        """SIGTERM, then wait: the server finishes writing its store; queued jobs resume at its next start."""
        process = self.process
        if process is None or not self.running:
            return
        self._stopping = True
        process.terminate()
        if not process.waitForFinished(wait_ms):
            process.kill()
            process.waitForFinished(5000)

    def _add(self, line: str) -> None:
        self.lines.append(line)
        self.log_line.emit(line)

    def _read(self) -> None:
        if self.process is None:  # output signalled by a process already let go
            return
        data = bytes(self.process.readAllStandardOutput().data()).decode("utf-8", "replace")
        for line in data.splitlines():
            self._add(line)

    def _finished(self, code: int, status) -> None:
        self._read()
        if self._stopping:
            self._add("--- the local server stopped ---")
            return
        self._add(f"--- the local server exited with status {code} ---")
        self.exited.emit(f"The local server stopped (exit status {code}). Its log, in the Server log dock, "
                         "says why; fix that and start it again.")

    def _error(self, error) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self._add("--- the server could not be started ---")
            self.exited.emit("The server could not be started: is this panel's environment installed "
                             "(`pip install -e .`)? Start `tokenflow serve` in a terminal to see why.")
