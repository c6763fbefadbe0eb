#!/usr/bin/env python3
"""Time to the first resumed body byte, for two tusker-cli builds side by side (before and
after a change), on the same journal shapes. Alternates the builds, prints medians.

    tests/bench/relaunch_ab.py --a OLD_CLI --b NEW_CLI [--runs 5] [--files 10000]

Cases:
  queued    N small files queued (the journal filled by an upload stopped at once), `resume`
  touched   the same after `touch` of every file (a moved stamp: the new build proves first)
  big       one 1 GiB file with 768 MiB on the sink, touched, `resume` (the proof's cost)
The sink (tests/bench/sink.mjs) reports its first body byte after a reset.
"""

import argparse
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402


def fill(cli, data, sink_ep, paths, until_rows=None, until_acked=None):
    """Runs `upload` until the journal has the rows (or the offset), then SIGTERM."""
    env = dict(os.environ, TUSKER_DATA_DIR=str(data))
    args = [cli, "upload", "--plain", "--endpoint", sink_ep]
    if until_rows is not None:
        args += ["--bandwidth", "1"]
    else:
        args += ["--bandwidth", "256MiB", "--chunk-size", "64MiB"]
    p = subprocess.Popen([*args, *map(str, paths)], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline:
        try:
            with sqlite3.connect(f"file:{data / 'journal.sqlite'}?mode=ro", uri=True) as db:
                if until_rows is not None:
                    if db.execute("SELECT count(*) FROM uploads").fetchone()[0] >= until_rows:
                        break
                elif (db.execute("SELECT max(acked_offset) FROM uploads").fetchone()[0] or 0) >= until_acked:
                    break
        except sqlite3.Error:
            pass
        time.sleep(0.05)
    else:
        raise SystemExit("the journal was never filled")
    p.send_signal(signal.SIGTERM)
    p.wait(60)


def first_byte(cli, data, sink):
    env = dict(os.environ, TUSKER_DATA_DIR=str(data))
    sink.arm_first_byte()
    t0 = time.time()
    p = subprocess.Popen([cli, "resume", "--plain"], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # A build that refuses a touched file (file changed) sends nothing: None.
    fb = sink.first_byte if sink._event.wait(30) else None
    sink._event.clear()
    p.send_signal(signal.SIGTERM)
    p.wait(60)
    return None if fb is None else (fb - t0) * 1000


def touch(paths):
    now = time.time() + 10
    for p in paths:
        os.utime(p, (now, now))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", required=True, help="tusker-cli before")
    ap.add_argument("--b", required=True, help="tusker-cli after")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--files", type=int, default=10000)
    ap.add_argument("--work", default="/dev/shm/tusker-ab")
    args = ap.parse_args()
    work = Path(args.work)
    bench.clear(work)
    sink = bench.Node(bench.BENCH / "sink.mjs", cwd=bench.BENCH)
    sink_ep = f"http://127.0.0.1:{sink.port}/files"
    # One set of small files per case: touching one set must not move the other's stamps.
    sets = {}
    for case in ("queued", "touched"):
        d = work / case
        d.mkdir()
        sets[case] = []
        for i in range(args.files):
            f = d / f"f{i:05}.bin"
            f.write_bytes(os.urandom(4096))
            sets[case].append(f)
    big = work / "big.bin"
    bench.write_random(big, 1 << 30)
    results = {}
    try:
        for name, cli in (("a", args.a), ("b", args.b)):
            for case in ("queued", "touched", "big"):
                data = work / f"data-{name}-{case}"
                bench.clear(data)
                if case == "big":
                    fill(cli, data, sink_ep, [big], until_acked=768 << 20)
                else:
                    fill(cli, data, sink_ep, [work / case], until_rows=args.files)
                results[(name, case)] = data
        times = {k: [] for k in results}
        for r in range(args.runs):
            for case in ("queued", "touched", "big"):
                for name, cli in (("a", args.a), ("b", args.b)):
                    data = results[(name, case)]
                    if case == "touched":
                        touch(sets["touched"])
                    if case == "big":
                        touch([big])
                    times[(name, case)].append(first_byte(cli, data, sink))
        def show(xs):
            got = sorted(x for x in xs if x is not None)
            if not got:
                return "no byte sent (refused)"
            return f"median {bench.median(got):6.0f} ms {[round(x) for x in got]}"

        for case in ("queued", "touched", "big"):
            print(f"{case:8} before: {show(times[('a', case)])} | after: {show(times[('b', case)])}")
    finally:
        sink.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
