"""The server assembled: store, scheduler, journal, worker, front, one ROUTER socket.

Start-up order matters for "nothing lost": the store is opened and jobs a dead server
left running are put back in the queue (with a `requeued` event) before the socket
binds, so no client can see a half-recovered state.
"""

from __future__ import annotations

import logging
import secrets
import threading
from typing import TYPE_CHECKING

import zmq

from bridge.display import format_bytes
from bridge.wire import protocol as p
from bridge.wire.local import default_endpoint
from server.config import ServerConfig
from server.data_lock import DataDirLock
from server.disk import Reserve, Usage, empty_trash, sweep, trim_cache, usage
from server.engine_host import EngineFactory, EngineHost, default_factory
from server.front import Front
from server.journal import BlobCache, Doorbell, Journal
from server.scheduler import Scheduler
from server.security import bind_private, secure
from server.service import QUEUE_PAUSED, Service
from server.store import JobStore
from server.submission import check_job_output
from server.worker import Worker

if TYPE_CHECKING:
    from server.cluster.worker import ClusterEngines, ClusterWorker

log = logging.getLogger("tokenflow.server")

# Messages queued per client before sends to it pause; their bytes are bounded by
# Limits.client_queue_bytes (server/front.py), so this only bounds small messages.
SEND_QUEUE_MESSAGES = 64
RECEIVE_QUEUE_MESSAGES = 64
BLOB_CACHE_BYTES = 64 << 20


class Server:
    def __init__(self, config: ServerConfig, engine_factory: EngineFactory | None = None, preload: bool = True):
        self.config = config
        self.server_id = secrets.token_hex(8)
        config.data.create()
        # Before the store is opened: a second server must not "recover" this one's jobs.
        self.lock = DataDirLock(config.data.root).acquire()
        try:
            self.store = JobStore(config.data.database)
        except BaseException:
            self.lock.release()
            raise
        self.doorbell = Doorbell()
        # Recent payloads for live subscribers; bounded with the send budgets (ten 1080p frames).
        self.journal = Journal(self.store, config.data, BlobCache(max_bytes=BLOB_CACHE_BYTES), self.doorbell)
        for job_id in self.store.requeue_interrupted():
            attempt = self.store.require(job_id).attempts + 1
            self.journal.append(job_id, p.Requeued(attempt=attempt, reason="the server restarted"))
            log.info("job %s was interrupted; it runs again", job_id)
        self.scheduler = Scheduler(self.store.queued(), paused=bool(self.store.setting(QUEUE_PAUSED, False)))
        factory = engine_factory or default_factory(config.device, config.cache_dir)
        self.reserve = Reserve(config.data)
        self.housekeeping()
        job_options = {"output_check": lambda spec, own: check_job_output(spec, config, own, self.store.output_owners),
                       "reserve": self.reserve, "may_write": config.output_roots.permits}
        self.engines: EngineHost | ClusterEngines
        self.worker: Worker | ClusterWorker
        if config.cluster:  # Ray is imported here only: the local server never needs it
            from server.cluster.worker import cluster_backend

            self.engines, self.worker = cluster_backend(config, factory, preload, self.journal, self.scheduler,
                                                        job_options, after_job=self.housekeeping)
        else:
            self.engines = EngineHost(factory, config.default_model)
            self.worker = Worker(self.journal, self.scheduler, self.engines, preload=preload,
                                 job_options=job_options, after_job=self.housekeeping)
        self.service = Service(config, self.journal, self.scheduler, self.engines, self.server_id)
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.ROUTER)
        self._auth = None
        self.front: Front | None = None
        self._thread: threading.Thread | None = None

    def housekeeping(self) -> Usage:
        """Retention and cache limits applied, the disk reserve back in place; returns the space used.

        Runs at start and after every job, on the worker's thread (never beside a job).
        """
        cfg = self.config
        deleted = sweep(self.store, self.scheduler, cfg.data, cfg.retention)
        empty_trash(cfg.data)
        freed = trim_cache(cfg.cache_dir, cfg.retention.cache_bytes)
        service: Service | None = getattr(self, "service", None)  # made after the first housekeeping
        if service is not None:
            service.sweep_uploads()
        self.reserve.ensure()
        used = usage(cfg.data, cfg.cache_dir, cfg.free_space)
        if deleted or freed:
            log.info("retention: deleted %d old job(s), trimmed %s of inversion cache", len(deleted),
                     format_bytes(freed))
        self.usage = used
        return used

    def bind(self) -> str:
        """Bind (after the security check); returns the endpoint actually bound."""
        s = self.socket
        limits = self.config.limits
        s.setsockopt(zmq.ROUTER_MANDATORY, 1)  # unroutable and full queues raise instead of dropping
        # Per frame: anything up to this is read and answered (`too_large` past
        # max_request_bytes); ZeroMQ drops a peer that sends a bigger frame.
        s.setsockopt(zmq.MAXMSGSIZE, max(limits.max_frame_bytes, limits.max_request_bytes))
        s.setsockopt(zmq.SNDHWM, SEND_QUEUE_MESSAGES)  # bytes are bounded by the front's budget
        s.setsockopt(zmq.RCVHWM, RECEIVE_QUEUE_MESSAGES)  # a flooding client waits on its own side
        s.setsockopt(zmq.LINGER, 0)
        # No ZMTP heartbeats (HEARTBEAT_IVL/TIMEOUT) on the ROUTER: with them, a client that
        # floods and then closes abruptly made libzmq abort (stream_engine_base.cpp
        # `!_io_error`). Liveness is the application's own heartbeat (front.expire); a
        # connection that died without a FIN is found by the kernel's TCP keepalive.
        s.setsockopt(zmq.TCP_KEEPALIVE, 1)
        s.setsockopt(zmq.TCP_KEEPALIVE_IDLE, 30)
        s.setsockopt(zmq.TCP_KEEPALIVE_INTVL, 5)
        s.setsockopt(zmq.TCP_KEEPALIVE_CNT, 3)
        where = self.config.bind or default_endpoint()
        self._auth, owner_of = secure(s, self.context, where, self.config.curve_dir)
        bind_private(s, where)
        endpoint = s.getsockopt_string(zmq.LAST_ENDPOINT)
        self.lock.note(endpoint)
        self.front = Front(s, self.service, self.doorbell, limits, owner_of=owner_of)
        return endpoint

    def serve_forever(self) -> None:
        """Run the worker and the front until `stop()`; call `bind()` first."""
        assert self.front is not None, "bind() first"
        self.worker.start()
        try:
            self.front.serve()
        finally:
            self._shutdown()

    def start_in_thread(self) -> str:
        """For tests and embedding: bind, then serve on a background thread."""
        endpoint = self.bind()
        self._thread = threading.Thread(target=self.serve_forever, name="tokenflow-front", daemon=True)
        self._thread.start()
        return endpoint

    def stop(self, timeout: float = 30.0) -> None:
        self.scheduler.stop()  # the running job is cancelled and goes back in the queue
        if self.front is not None:
            self.front.stop()
        if self._thread is not None:
            self._thread.join(timeout)

    def _shutdown(self) -> None:
        self.scheduler.stop()
        self.worker.join(timeout=60)
        self.service.close()
        self.socket.close(linger=0)
        if self._auth is not None:
            self._auth.stop()
        self.context.term()
        self.store.close()
        self.doorbell.close()
        self.lock.release()

