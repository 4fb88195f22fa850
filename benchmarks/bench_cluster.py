"""The Ray cluster backend (`tokenflow serve --cluster`): throughput on one worker vs two, and
the dispatch overhead of one job against the local worker, in one run.

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/bench_cluster.py [--jobs 8] [--steps 2] [--json out.json]

A Ray cluster on this machine (head + worker nodes with one fake GPU each, all on
127.0.0.1), the tiny random model, short jobs (4 frames, 64 px). Phase 1: one worker node,
N jobs queued at once, time from the first submit to the last `done`. Phase 2: a second
node joins (its actor loads the model), the same N jobs again. Then one job at a time, warm,
through the cluster and through a local server (no Ray): the difference is what dispatching
to an actor costs. On a machine whose cores are fewer than the workers need, two workers
share the same CPUs and cannot show the scaling two GPUs would.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # keep every Ray address on 127.0.0.1

from bridge.wire import protocol as p  # noqa: E402
from bridge.wire.client import Client  # noqa: E402
from server.app import Server  # noqa: E402
from server.config import ServerConfig  # noqa: E402
from server.paths import DataDir  # noqa: E402

CLIP = REPO / "media" / "carphone_pristine.mp4"
NODE = {"num_cpus": 1, "num_gpus": 1, "node_ip_address": "127.0.0.1", "object_store_memory": 100 << 20}


def serve(root: Path, model: Path, cluster: str | None) -> tuple[Server, Client]:
    config = ServerConfig(data=DataDir(root / "data"), models=(str(model),), device="cpu",
                          bind=f"ipc://{root}/s.sock", allowed_output_dirs=(root,), cluster=cluster)
    server = Server(config)
    client = Client(server.start_in_thread(), timeout=120)
    client.connect()
    return server, client


def spec(root: Path, name: str, steps: int) -> p.JobSpec:
    return p.JobSpec(input=str(CLIP), frames="0:3", output=str(root / f"{name}.mp4"),
                     params={"prompt": name, "steps": steps, "short_side": 64, "kf_interval": 2, "seed": 1})


def batch(client: Client, root: Path, tag: str, n: int, steps: int) -> float:
    started = time.perf_counter()
    jobs = [client.submit(spec(root, f"{tag}-{i}", steps)).job for i in range(n)]
    for job in jobs:
        assert client.wait(job).kind == "done", job
    return time.perf_counter() - started


def one_job_s(client: Client, root: Path, tag: str, steps: int, repeat: int) -> float:
    return statistics.median(batch(client, root, f"{tag}-{i}", 1, steps) for i in range(repeat))


def wait_workers(server: Server, n: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while server.worker.pool.workers() != n:  # pyright: ignore[reportAttributeAccessIssue]
        if time.monotonic() > deadline:
            raise SystemExit(f"the cluster did not reach {n} worker(s)")
        time.sleep(0.2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3, help="single-job runs per side (median)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    from ray.cluster_utils import Cluster

    from server.quiet import quiet_libraries
    from tokenflow.tiny import make_tiny_pipeline_dir

    quiet_libraries()
    root = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    model = make_tiny_pipeline_dir(root / "tiny")
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "num_gpus": 0, "node_ip_address": "127.0.0.1", "include_dashboard": False,
        "object_store_memory": 100 << 20})
    cluster.add_node(**NODE)
    figures: dict[str, float | int | str] = {"jobs": args.jobs, "steps": args.steps, "cpus": os.cpu_count() or 0}
    try:
        server, client = serve(root / "cluster", model, cluster.address)
        wait_workers(server, 1)
        batch(client, root / "cluster", "warm1", 1, args.steps)
        figures["one_worker_s"] = batch(client, root / "cluster", "one", args.jobs, args.steps)
        cluster.add_node(**NODE)
        wait_workers(server, 2)
        batch(client, root / "cluster", "warm2", 2, args.steps)
        figures["two_workers_s"] = batch(client, root / "cluster", "two", args.jobs, args.steps)
        figures["cluster_one_job_s"] = one_job_s(client, root / "cluster", "single", args.steps, args.repeat)
        client.close()
        server.stop(timeout=60)
        local, lclient = serve(root / "local", model, None)
        batch(lclient, root / "local", "warm", 1, args.steps)
        figures["local_one_job_s"] = one_job_s(lclient, root / "local", "single", args.steps, args.repeat)
        lclient.close()
        local.stop(timeout=60)
    finally:
        cluster.shutdown()
    one, two = float(figures["one_worker_s"]), float(figures["two_workers_s"])
    figures["throughput_ratio"] = one / two
    figures["dispatch_overhead_s"] = float(figures["cluster_one_job_s"]) - float(figures["local_one_job_s"])
    print(f"{args.jobs} jobs ({args.steps} steps, 4 frames, 64 px), {figures['cpus']} CPU cores")
    print(f"  one worker:  {one:7.2f} s  ({args.jobs / one:.2f} jobs/s)")
    print(f"  two workers: {two:7.2f} s  ({args.jobs / two:.2f} jobs/s)  throughput x{one / two:.2f}")
    print(f"  one job, warm: cluster {figures['cluster_one_job_s']:.3f} s, local worker "
          f"{figures['local_one_job_s']:.3f} s, dispatch overhead {figures['dispatch_overhead_s'] * 1000:+.0f} ms")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
