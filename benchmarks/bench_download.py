"""Output downloads over the protocol: throughput by chunk size, against a local file copy.

    python benchmarks/bench_download.py [--frames 48] [--preset prores_4444] [--json FILE]

A `tokenflow serve` process with the pass-through engine (no model) writes a full-HD
clip as a large ProRes output; a client then downloads it (`files` + `read`, one chunk
per request, SHA-256 checked, as `tokenflow submit --download` does) with several
chunk sizes. The figure to compare with is a plain local copy of the same file: on
loopback, the protocol's cost is what is left.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.bench_server import Serve, make_hd_clip  # noqa: E402
from bridge.wire import protocol as p  # noqa: E402
from bridge.wire.client import EventKind  # noqa: E402
from bridge.wire.download import download_job  # noqa: E402

CHUNKS = (64 << 10, 256 << 10, 1 << 20)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--preset", default="prores_4444")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        clip = make_hd_clip(root / "hd.mp4", args.frames)
        serve = Serve(root / "srv", "none", "cpu", ["--engine-factory", "benchmarks.bench_server:passthrough_factory"])
        try:
            c = serve.client()
            out = root / "srv" / "out.mov"
            job = c.submit(p.JobSpec(input=str(clip), params={"prompt": "pass-through"}, output=str(out),
                                     preset=args.preset)).job
            assert c.wait(job).kind is EventKind.DONE
            size = out.stat().st_size
            t0 = time.perf_counter()
            shutil.copyfile(out, root / "copy.mov")
            copy_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            hashlib.sha256(out.read_bytes()).hexdigest()
            hash_s = time.perf_counter() - t0
            results = {"file_bytes": size, "local_copy_MBps": size / copy_s / 1e6, "sha256_MBps": size / hash_s / 1e6,
                       "download": {}}
            for window in (1, 4):
                for chunk in CHUNKS:
                    times = []
                    for n in range(3):  # best of three: the machine may be shared
                        dest = root / f"dl_{chunk}_{window}_{n}"
                        t0 = time.perf_counter()
                        (saved,) = download_job(c, job, dest, chunk_size=chunk, window=window)
                        times.append(time.perf_counter() - t0)
                        assert saved.size == size
                        shutil.rmtree(dest)
                    took = min(times)
                    results["download"][f"{chunk >> 10} KiB, {window} in flight"] = {
                        "seconds": took, "MBps": size / took / 1e6, "requests": -(-size // chunk)}
            c.close()
        finally:
            serve.stop()
    print(f"output: {results['file_bytes'] / 1e6:.1f} MB ({args.preset}, {args.frames} full-HD frames)")
    print(f"local copy: {results['local_copy_MBps']:.0f} MB/s; SHA-256: {results['sha256_MBps']:.0f} MB/s")
    for name, r in results["download"].items():
        print(f"download, {name}: {r['MBps']:.0f} MB/s ({r['requests']} requests, {r['seconds']:.2f} s, "
              "checksum included)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
