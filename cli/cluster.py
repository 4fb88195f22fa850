"""`tokenflow cluster status`: the Ray cluster a `tokenflow serve --cluster` runs its jobs on:
nodes, GPUs, the worker actors with the model each holds and the job each runs (docs/cluster.md)."""

from __future__ import annotations

import argparse
import json
import os
import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "cluster", help="the Ray cluster that runs a cluster-backed server's jobs",
        description="Look at the Ray cluster behind `tokenflow serve --cluster` (docs/cluster.md).",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    status = actions.add_parser("status", help="nodes, GPUs, models loaded, running jobs")
    status.add_argument("--address", default=os.environ.get("RAY_ADDRESS") or "auto",
                        help="the cluster's head, HOST:PORT (default: $RAY_ADDRESS, or the cluster running here)")
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    status.set_defaults(func=run_status)


def run_status(args: argparse.Namespace) -> int:
    try:
        import ray  # noqa: F401  # the optional extra: say how to get it rather than fail with a traceback
    except ImportError:
        print('tokenflow cluster: error: Ray is not installed; install the cluster extra: pip install ".[cluster]"',
              file=sys.stderr)
        return 2
    from server.cluster.pool import connect
    from server.cluster.status import cluster_status, describe

    try:
        connect(args.address)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        print(f"tokenflow cluster: error: cannot reach the Ray cluster at {args.address} ({exc}). Start it with "
              "`ray start --head` (docs/cluster.md) or pass --address HOST:PORT.", file=sys.stderr)
        return 2
    status = cluster_status()
    print(json.dumps(status, indent=2) if args.json else describe(status))
    return 0
