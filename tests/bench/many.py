#!/usr/bin/env python3
"""100,000 small files in one dropped folder (issue 11): 1–64 KiB each (about 3.1 GiB), in 100
sub-folders on tmpfs, uploaded by `tusker-cli upload --plain` to tests/bench/sink.mjs (the
client's own cost: the sink does nothing). Prints the time from the command's start to the
first body byte at the sink, files/s, CPU, peak RSS and the journal's size for each `--parallel`, as a Markdown table with the date and machine.

    tests/bench/many.py --cli target/release/tusker-cli [--files 100000] [--parallel 4,16]
"""

import argparse
import datetime
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402


def make_tree(root, n, seed=11):
    rng = random.Random(seed)
    block = os.urandom(64 * 1024)
    total = 0
    for i in range(n):
        d = root / f"d{i % 100:03}"
        if i < 100:
            d.mkdir(parents=True, exist_ok=True)
        size = rng.randint(1024, 64 * 1024)
        # Distinct content per file (the first bytes carry its number).
        head = f"{i:08}".encode()
        (d / f"f{i:06}.bin").write_bytes(head + block[len(head):size])
        total += size
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", required=True)
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--parallel", default="4,16")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tusker-many-", dir="/dev/shm"))
    rows = []
    try:
        tree = work / "drop"
        bench.log(f"writing {args.files} files")
        total = make_tree(tree, args.files)
        sink = bench.Node(bench.BENCH / "sink.mjs")
        endpoint = f"http://127.0.0.1:{sink.port}/files/"
        for par in [int(p) for p in args.parallel.split(",")]:
            data = work / "data"
            shutil.rmtree(data, ignore_errors=True)
            env = dict(os.environ, TUSKER_DATA_DIR=str(data))
            bench.log(f"--parallel {par}")
            sink.arm_first_byte()
            t0 = time.time()
            sink_cpu = sink.cpu()
            s = bench.measured([args.cli, "upload", "--plain", "--parallel", str(par),
                                "--endpoint", endpoint, tree], env=env)
            s["sink_cpu"] = sink.cpu() - sink_cpu
            first = sink.wait_first_byte(5) - t0
            journal = sum(f.stat().st_size for f in data.glob("journal.sqlite*"))
            rows.append((par, s, journal, first))
        sink.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"Measured {datetime.date.today()} on {bench.machine()}; {args.files:,} files of 1–64 KiB "
          f"({total / 2**30:.1f} GiB) in 100 folders on tmpfs, to tests/bench/sink.mjs.\n")
    print("| `--parallel` | First body byte | Wall time | Files/s | CLI CPU (user + sys) | Sink CPU | CLI peak RSS | Journal |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for par, s, journal, first in rows:
        print(f"| {par} | {first * 1000:.0f} ms | {s['wall']:.1f} s | {args.files / s['wall']:,.0f} | {s['cpu']:.1f} s "
              f"| {s['sink_cpu']:.1f} s | {s['rss']:.0f} MiB | {journal / 2**20:.0f} MiB |")


if __name__ == "__main__":
    main()
