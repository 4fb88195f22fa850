"""`tokenflow serve`: the long-running inference server."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import logging
import os
import signal
import sqlite3
import sys
from pathlib import Path

from bridge.wire.protocol import Limits

MODEL_ENV = "TOKENFLOW_MODEL"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve", help="run the inference server (keeps the model loaded, queues jobs)",
        description="Run the TokenFlow server: clients submit jobs over ZeroMQ (see docs/protocol.md); "
        "the model stays loaded between jobs and every job is kept in a store, across restarts.",
    )
    parser.add_argument("--bind", metavar="ENDPOINT",
                        help="ZeroMQ endpoint (default: a private ipc:// socket only your account can reach; "
                        "tcp://127.0.0.1:PORT uses keys made in your config folder; any other address needs "
                        "--curve-dir). See docs/protocol.md, Security.")
    parser.add_argument("--model", action="append", metavar="MODEL",
                        help="model to offer (hub id, local folder, .safetensors, or a name from `tokenflow models list`); repeat to offer several, the "
                        f"first is the default (default: ${MODEL_ENV} or the engine's default)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    parser.add_argument("--data-dir", type=Path,
                        help="job store and job files (default: $TOKENFLOW_DATA_DIR or the user data directory)")
    parser.add_argument("--cache-dir", type=Path,
                        help="inversion cache shared by all jobs (default: $TOKENFLOW_CACHE_DIR or the user cache directory)")
    parser.add_argument("--allow-output", action="append", type=Path, metavar="DIR",
                        help="a folder jobs may write outputs under, added to the defaults (your home folder "
                        "and DATA_DIR/outputs); repeatable")
    parser.add_argument("--allow-output-only", action="store_true",
                        help="outputs go only under the --allow-output folders, not the defaults (a narrower server)")
    parser.add_argument("--allow-input", action="append", type=Path, metavar="DIR",
                        help="with --curve-dir: a folder other clients may read inputs from and probe; repeatable "
                        "(default: the output folders). Your own account's clients read anywhere.")
    parser.add_argument("--curve-dir", type=Path, help="CurveZMQ keys (server.key_secret, clients/*.key)")
    parser.add_argument("--init-keys", type=Path, metavar="DIR",
                        help="make a server key pair and one client key pair in DIR, then exit")
    parser.add_argument("--force", action="store_true", help="with --init-keys: replace keys already in DIR")
    parser.add_argument("--max-queue", type=int, default=Limits.max_queue, help="queued jobs at most (default: %(default)s)")
    parser.add_argument("--max-request-bytes", type=int, default=Limits.max_request_bytes,
                        help="largest inbound message (default: %(default)s)")
    parser.add_argument("--client-queue-bytes", type=int, default=Limits.client_queue_bytes,
                        help="bytes of frames held for one client before its streams pause (default: %(default)s)")
    parser.add_argument("--total-queue-bytes", type=int, default=Limits.total_queue_bytes,
                        help="the same for all clients together (default: %(default)s)")
    from server.disk import Retention

    keep = Retention()
    parser.add_argument("--keep-days", type=float, default=keep.keep_days, metavar="N",
                        help="delete finished jobs' stored data (never their outputs) after N days; 0 keeps forever "
                        "(default: %(default)s)")
    parser.add_argument("--keep-gb", type=float, default=keep.keep_bytes / 1e9, metavar="N",
                        help="keep at most N GB of finished jobs' stored data, oldest deleted first; 0: no limit "
                        "(default: %(default)s)")
    parser.add_argument("--cache-gb", type=float, default=keep.cache_bytes / 1e9, metavar="N",
                        help="inversion cache size; least recently used entries go first; 0: no limit "
                        "(default: %(default)s)")
    parser.add_argument("--max-jobs", type=int, default=keep.max_jobs, metavar="N",
                        help="jobs kept in the store, any state; submits beyond it are refused (default: %(default)s)")
    parser.add_argument("--cluster", metavar="ADDRESS",
                        help="run jobs on the Ray cluster whose head is ADDRESS (HOST:PORT; `auto`: the one "
                        "$RAY_ADDRESS names or that runs here); this server stays the one clients talk to. "
                        'Needs the cluster extra (pip install ".[cluster]"); see docs/cluster.md')
    parser.add_argument("--no-preload", action="store_true", help="load the model at the first job, not at start")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    # For tests and benchmarks: module:callable taking a model name, returning an engine.
    parser.add_argument("--engine-factory", help=argparse.SUPPRESS)
    parser.set_defaults(func=run)


def _models(args: argparse.Namespace) -> tuple[str, ...]:
    if args.model:
        return tuple(args.model)
    if os.environ.get(MODEL_ENV):
        return (os.environ[MODEL_ENV],)
    from tokenflow.model import DEFAULT_MODEL

    return (DEFAULT_MODEL,)


def _reason(exc: BaseException) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


def _load_factory(spec: str):
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    if args.init_keys:
        from server.security import SecurityError, init_keys

        try:
            server_public, client_secret = init_keys(args.init_keys, force=args.force)
        except SecurityError as exc:
            print(f"tokenflow serve: error: {exc}", file=sys.stderr)
            return 2
        print(f"Made keys in {args.init_keys}.\n  Start the server with: tokenflow serve --bind tcp://0.0.0.0:PORT "
              f"--curve-dir {args.init_keys}\n  Give clients {server_public} and {client_secret} "
              "(--server-key / --client-key); add more clients' public keys to clients/.")
        return 0

    from bridge.folders import inversion_cache_dir
    from bridge.wire.local import LocalSetupError, default_endpoint
    from server.app import Server
    from server.config import ServerConfig
    from server.disk import Retention, free_space_from_env
    from server.paths import resolve_data_dir
    from server.security import SecurityError

    try:
        bind = args.bind or default_endpoint()
    except LocalSetupError as exc:
        print(f"tokenflow serve: error: {exc}", file=sys.stderr)
        return 2
    data = resolve_data_dir(args.data_dir)
    from server.output_roots import RootsError, allowed_output_dirs, private_folders

    cache_dir = args.cache_dir or inversion_cache_dir()
    try:
        allowed = allowed_output_dirs(data, args.allow_output or (), only=args.allow_output_only,
                                      private=private_folders(data, cache_dir, args.curve_dir))
    except RootsError as exc:
        print(f"tokenflow serve: error: {exc}", file=sys.stderr)
        return 2
    config = ServerConfig(
        data=data, models=_models(args), device=args.device,
        cache_dir=cache_dir, bind=bind, allowed_output_dirs=allowed,
        allowed_input_dirs=tuple(p.expanduser().resolve() for p in args.allow_input or ()),
        curve_dir=args.curve_dir,
        limits=dataclasses.replace(Limits(), max_queue=args.max_queue, max_request_bytes=args.max_request_bytes,
                                    client_queue_bytes=args.client_queue_bytes, total_queue_bytes=args.total_queue_bytes),
        retention=Retention(keep_days=args.keep_days, keep_bytes=int(args.keep_gb * 1e9),
                            cache_bytes=int(args.cache_gb * 1e9), max_jobs=args.max_jobs),
        free_space=free_space_from_env(), cluster=args.cluster,
    )
    factory = _load_factory(args.engine_factory) if args.engine_factory else None
    from server.data_lock import DataDirBusy

    try:
        server = Server(config, engine_factory=factory, preload=not args.no_preload)
    except DataDirBusy as exc:
        print(f"tokenflow serve: error: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:  # only --cluster imports anything optional
        print(f'tokenflow serve: error: --cluster needs Ray ({exc}); install the cluster extra: pip install ".[cluster]"',
              file=sys.stderr)
        return 2
    except ConnectionError as exc:
        print(f"tokenflow serve: error: cannot join the Ray cluster at {args.cluster} ({exc}). Start it first "
              "(`ray start --head`, docs/cluster.md) or check the address.", file=sys.stderr)
        return 2
    except (OSError, sqlite3.Error) as exc:
        print(f"tokenflow serve: error: cannot use the data folder {data.root} ({_reason(exc)}): make it writable "
              "for this user, or pick another with --data-dir.", file=sys.stderr)
        return 2
    try:
        endpoint = server.bind()
    except SecurityError as exc:
        print(f"tokenflow serve: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # zmq.ZMQError: address in use, bad endpoint
        print(f"tokenflow serve: error: cannot bind {bind}: {exc}. Is another server running? "
              "Pick another port with --bind.", file=sys.stderr)
        return 2

    def stop(signum, frame) -> None:
        server.stop(timeout=0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # Tests and scripts wait for this line; keep its shape.
    print(f"tokenflow server listening on {endpoint} (data: {data.root}, models: {', '.join(config.models)})",
          file=sys.stderr, flush=True)
    if args.cluster:
        print(f"tokenflow server runs its jobs on the Ray cluster {args.cluster} ({server.engines.device})",
              file=sys.stderr, flush=True)
    print(f"tokenflow server space: {server.usage.describe()} (keeping finished jobs {args.keep_days:g} days / "
          f"{args.keep_gb:g} GB, inversion cache {args.cache_gb:g} GB)", file=sys.stderr, flush=True)
    server.serve_forever()
    return 0
