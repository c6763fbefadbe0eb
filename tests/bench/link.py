#!/usr/bin/env python3
"""Uploads over a per-flow link: each TCP connection capped (20 MB/s) and delayed (20 ms each
way) by tests/bench/shaper.mjs, to rustus 0.5.10 (which has concatenation), 128 MiB and 1 GiB
from tmpfs. Compares tus-js-client with one stream and with `parallelUploads: 4` against
tusker-cli, alternating, medians.

    tests/bench/link.py --cli target/release/tusker-cli [--runs 3] [--sizes 128,1024]

Tusker runs with one stream (`--parts 1`) and with four parts (`--parts 4`), through the link
and, for the second check of the issue (parts no slower than one stream), straight to rustus
over plain loopback.

rustus runs with --max-body-size 1 GiB so that tus-js-client (no chunking) is not refused; Tusker
takes the same server. Prints a Markdown table (date and machine included).
"""

import argparse
import datetime
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402

RATE = 20_000_000
DELAY_MS = 20


def rustus(data_dir):
    """Starts rustus on a free port; returns (process, port)."""
    import socket
    for _ in range(5):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        for d in ("data", "info"):
            (data_dir / d).mkdir(parents=True, exist_ok=True)
        p = subprocess.Popen(
            ["rustus", "--host", "127.0.0.1", "--port", str(port), "--url", "/files",
             "--data-dir", str(data_dir / "data"), "--info-dir", str(data_dir / "info"),
             "--max-body-size", str(1 << 30), "--log-level", "ERROR"],
            stdout=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return p, port
            except OSError:
                if p.poll() is not None:
                    break
                time.sleep(0.05)
        p.kill()
    raise SystemExit("rustus did not start (cargo install rustus --version 0.5.10 --locked --features hashers)")


def shaper(upstream):
    p = subprocess.Popen(["node", str(bench.BENCH / "shaper.mjs"), str(upstream), str(RATE), str(DELAY_MS)],
                         stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if not line.startswith("LISTENING "):
        raise SystemExit(f"shaper did not start: {line!r}")
    return p, int(line.split()[1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sizes", default="128,1024", help="MiB, comma-separated")
    args = ap.parse_args()
    if not shutil.which("rustus"):
        raise SystemExit("rustus is missing: cargo install rustus --version 0.5.10 --locked --features hashers")
    work = Path(tempfile.mkdtemp(prefix="tusker-link-", dir="/dev/shm"))
    store = work / "rustus"
    server, port = rustus(store)
    link, link_port = shaper(port)
    endpoint = f"http://127.0.0.1:{link_port}/files/"
    direct = f"http://127.0.0.1:{port}/files/"
    rows = []
    try:
        for mib in [int(s) for s in args.sizes.split(",")]:
            src = work / f"file-{mib}"
            bench.write_random(src, mib * bench.MiB)
            clients = {
                "tus-js-client, one stream": ["node", bench.BENCH / "link_tusjs.mjs", endpoint, "1", src],
                "tus-js-client, parallelUploads: 4": ["node", bench.BENCH / "link_tusjs.mjs", endpoint, "4", src],
                "Tusker, one stream (`--parts 1`)": [args.cli, "upload", "--plain", "--parts", "1", "--endpoint", endpoint, src],
                "Tusker, `--parts 4`": [args.cli, "upload", "--plain", "--parts", "4", "--parts-min-size", "1MiB", "--endpoint", endpoint, src],
                "Tusker, one stream, plain loopback": [args.cli, "upload", "--plain", "--parts", "1", "--endpoint", direct, src],
                "Tusker, `--parts 4`, plain loopback": [args.cli, "upload", "--plain", "--parts", "4", "--parts-min-size", "1MiB", "--endpoint", direct, src],
            }
            samples = {name: [] for name in clients}
            for run in range(args.runs):
                for name, cmd in clients.items():
                    data = work / "tusker-data"
                    shutil.rmtree(data, ignore_errors=True)
                    env = dict(os.environ, TUSKER_DATA_DIR=str(data))
                    bench.log(f"{mib} MiB run {run + 1}: {name}")
                    samples[name].append(bench.measured(cmd, env=env))
                    # The server's store is cleared between runs (finals are full copies).
                    for d in ("data", "info"):
                        bench.clear(store / d)
            for name, s in samples.items():
                r = bench.summarize(s, mib * bench.MiB)
                rows.append((mib, name, r))
    finally:
        link.terminate()
        server.terminate()
        shutil.rmtree(work, ignore_errors=True)
    print(f"Measured {datetime.date.today()} on {bench.machine()}; link {RATE / 1e6:.0f} MB/s "
          f"per connection and {DELAY_MS} ms each way (tests/bench/shaper.mjs), rustus 0.5.10; medians of {args.runs}.\n")
    print("| Size | Client | Time | Throughput | CPU per GiB |")
    print("|---:|---|---:|---:|---:|")
    for mib, name, r in rows:
        print(f"| {mib} MiB | {name} | {r['wall_s']:.2f} s | {r['mb_s']:.1f} MB/s | {r['cpu_s_per_gib']:.2f} s |")


if __name__ == "__main__":
    main()
