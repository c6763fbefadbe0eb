#!/usr/bin/env python3
"""Tusker against the clients a user would pick instead, in one run on one machine.

    tests/bench/run.sh            # full run (1 GiB, 10 GiB, 10,000 files), updates docs/performance.md
    tests/bench/run.sh --smoke    # small sizes, proves the harness works (CI)

Every client runs as its own process; wall time, CPU time (user + system) and peak RSS come
from wait4(2). Clients alternate (A B C D, A B C D, ...) and the table shows medians. Servers:
the official @tus/server with its file store on tmpfs, and a trivial sink (tests/bench/sink.mjs)
for `curl -T`, the practical HTTP ceiling. Results go to docs/bench/ (JSON, Markdown, PNG).
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "tests" / "bench"
MiB = 1 << 20
GiB = 1 << 30


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def measured(cmd, env=None, stdout=subprocess.DEVNULL):
    """Runs cmd to completion; returns wall s, CPU s (user+sys, from wait4) and peak RSS MiB.
    The RSS comes from GNU time (%M): a child forked from this Python process would report
    Python's own pages as its high-water mark."""
    rss_file = Path("/dev/shm/tusker-bench-rss")
    t0 = time.perf_counter()
    p = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", str(rss_file), *map(str, cmd)],
                         env=env, stdout=stdout, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    err = p.stderr.read().decode(errors="replace")
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({p.returncode}): {' '.join(map(str, cmd))}\n{err[-2000:]}")
    rss_kib = int(rss_file.read_text().split()[-1])
    return {"wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "rss": rss_kib / 1024}


class Node:
    """A node server script that prints `LISTENING <port>`; stopped by PID."""

    def __init__(self, script, env=None, cwd=None):
        self.p = subprocess.Popen(
            ["node", str(script)], env=env, cwd=cwd, stdout=subprocess.PIPE, text=True
        )
        line = self.p.stdout.readline()
        if not line.startswith("LISTENING "):
            raise SystemExit(f"{script} did not start: {line!r}")
        self.port = int(line.split()[1])
        self.first_byte = None
        self._event = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            if line.startswith("FIRST_BYTE "):
                self.first_byte = int(line.split()[1]) / 1000.0
                self._event.set()

    def cpu(self):
        """CPU seconds (user + sys) the server has used so far, from /proc."""
        fields = Path(f"/proc/{self.p.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def arm_first_byte(self):
        """Forgets the last first byte; the sink reports the next one (sink.mjs /reset)."""
        urllib.request.urlopen(f"http://127.0.0.1:{self.port}/reset").read()
        self._event.clear()
        self.first_byte = None

    def wait_first_byte(self, timeout):
        if not self._event.wait(timeout):
            raise SystemExit("no body byte reached the sink")
        self._event.clear()
        return self.first_byte

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        try:
            self.p.wait(5)
        except subprocess.TimeoutExpired:
            self.p.kill()


def tus_server(store):
    env = dict(os.environ, TUS_DIR=str(store), TUS_PORT="0")
    return Node(ROOT / "tests/server/server.mjs", env=env, cwd=ROOT / "tests/server")


def write_random(path, size):
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 8 * MiB)
            f.write(os.urandom(n))
            left -= n


def clear(d):
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)


def median(xs):
    return statistics.median(xs)


def summarize(samples, size):
    """Medians of wall, MB/s, CPU s per GiB and peak RSS over runs."""
    walls = [s["wall"] for s in samples]
    return {
        "runs": len(samples),
        "wall_s": median(walls),
        "mb_s": median([size / 1e6 / w for w in walls]),
        "cpu_s_per_gib": median([s["cpu"] / (size / GiB) for s in samples]),
        "rss_mib": median([s["rss"] for s in samples]),
        "rss_max_mib": max(s["rss"] for s in samples),
    }


def versions(py):
    def out(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True).stdout.strip().splitlines()[0]
        except Exception:
            return "?"

    lock = json.loads((BENCH / "package-lock.json").read_text())
    tusjs = lock["packages"]["node_modules/tus-js-client"]["version"]
    server_lock = json.loads((ROOT / "tests/server/package-lock.json").read_text())
    tus_server_v = server_lock["packages"]["node_modules/@tus/server"]["version"]
    tuspy = out([py, "-c", "import importlib.metadata as m; print(m.version('tuspy'))"])
    rev = out(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    return {
        "tusker": f"git {rev}",
        "tus-js-client": f"{tusjs} (Node {out(['node', '--version'])})",
        "tuspy": f"{tuspy} (Python {platform.python_version()})",
        "curl": out(["curl", "--version"]).split(" (")[0],
        "openssl": out(["openssl", "version"]),
        "@tus/server": tus_server_v,
    }


def machine():
    model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal"):
            mem = int(line.split()[1]) // (1024 * 1024)
    os_name = "?"
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("PRETTY_NAME="):
            os_name = line.split("=", 1)[1].strip('"')
    return f"{os.cpu_count()} cores ({model}), {mem} GiB RAM, {os_name}, Linux {platform.release()}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true", help="small sizes, one run (CI)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cli", required=True, help="tusker-cli binary")
    ap.add_argument("--python", required=True, help="python with tuspy")
    ap.add_argument("--out", default=str(ROOT / "docs/bench"))
    ap.add_argument("--readme", action="store_true", help="write the table into docs/performance.md")
    a = ap.parse_args()

    smoke = a.smoke
    runs = 1 if smoke else a.runs
    big = 32 * MiB if smoke else GiB
    huge = 256 * MiB if smoke else 10 * GiB
    small_n = 300 if smoke else 10_000
    small_size = 4096
    parallel = 8
    work = Path("/dev/shm/tusker-bench")
    clear(work)
    cli = a.cli
    py = a.python
    results = {"smoke": smoke, "date": datetime.date.today().isoformat(), "machine": machine(),
               "versions": versions(py), "sizes": {"big": big, "huge": huge, "small_n": small_n}}

    store = work / "store"
    clear(store)
    server = tus_server(store)
    sink = Node(BENCH / "sink.mjs")
    tus_ep = f"http://127.0.0.1:{server.port}/files"
    sink_ep = f"http://127.0.0.1:{sink.port}/files"
    try:
        # 1. One big file.
        f = work / "big.bin"
        log(f"writing {big >> 20} MiB of random data")
        write_random(f, big)
        clients = {
            "Tusker → @tus/server": lambda d: [cli, "upload", "--plain", "--endpoint", tus_ep, str(f)],
            "tus-js-client → @tus/server": lambda d: ["node", str(BENCH / "tusjs_upload.mjs"), tus_ep, "1", str(f)],
            "tuspy → @tus/server": lambda d: [py, str(BENCH / "tuspy_upload.py"), tus_ep, str(f)],
            "curl -T → sink": lambda d: ["curl", "-sS", "-o", "/dev/null", "-T", str(f), f"http://127.0.0.1:{sink.port}/sink"],
            "Tusker → sink (tus)": lambda d: [cli, "upload", "--plain", "--endpoint", sink_ep, str(f)],
        }
        samples = {k: [] for k in clients}
        for r in range(runs):
            for name, make in clients.items():
                data = work / "data"
                clear(data)
                env = dict(os.environ, TUSKER_DATA_DIR=str(data))
                s = measured(make(data), env=env)
                samples[name].append(s)
                log(f"{name}: run {r + 1}: {big / 1e6 / s['wall']:.0f} MB/s, CPU {s['cpu']:.2f} s, RSS {s['rss']:.0f} MiB")
                for p in store.iterdir():
                    p.unlink()
        results["big"] = {k: summarize(v, big) for k, v in samples.items()}

        # 2. A much bigger (sparse) file: Tusker's memory must stay flat.
        h = work / "huge.bin"
        with open(h, "wb") as fh:
            fh.truncate(huge)
        data = work / "data"
        clear(data)
        s = measured([cli, "upload", "--plain", "--endpoint", sink_ep, str(h)],
                     env=dict(os.environ, TUSKER_DATA_DIR=str(data)))
        h.unlink()
        log(f"Tusker {huge >> 20} MiB sparse → sink: {huge / 1e6 / s['wall']:.0f} MB/s, RSS {s['rss']:.0f} MiB")
        results["huge"] = summarize([s], huge)

        # 3. Many small files, the same concurrency for both.
        sd = work / "small"
        clear(sd)
        paths = []
        for i in range(small_n):
            p = sd / f"{i // 1000:02d}" / f"f{i:05d}.bin"
            p.parent.mkdir(exist_ok=True)
            p.write_bytes(os.urandom(small_size))
            paths.append(str(p))
        listfile = work / "small.txt"
        listfile.write_text("\n".join(paths))
        small_clients = {
            "Tusker → @tus/server": lambda: [cli, "upload", "--plain", "--parallel", str(parallel), "--endpoint", tus_ep, str(sd)],
            "tus-js-client → @tus/server": lambda: ["node", str(BENCH / "tusjs_upload.mjs"), tus_ep, str(parallel), f"@{listfile}"],
            "Tusker → sink (tus)": lambda: [cli, "upload", "--plain", "--parallel", str(parallel), "--endpoint", sink_ep, str(sd)],
            "tus-js-client → sink (tus)": lambda: ["node", str(BENCH / "tusjs_upload.mjs"), sink_ep, str(parallel), f"@{listfile}"],
        }
        ss = {k: [] for k in small_clients}
        for r in range(runs):
            for name, make in small_clients.items():
                data = work / "data"
                clear(data)
                s = measured(make(), env=dict(os.environ, TUSKER_DATA_DIR=str(data)))
                ss[name].append(s)
                log(f"{small_n} × 4 KiB, {name}: run {r + 1}: {small_n / s['wall']:.0f} files/s")
                shutil.rmtree(store)
                store.mkdir()
        results["small"] = {
            k: {"files_s": median([small_n / s["wall"] for s in v]), "wall_s": median([s["wall"] for s in v]),
                "cpu_s": median([s["cpu"] for s in v]), "rss_mib": median([s["rss"] for s in v])}
            for k, v in ss.items()
        }

        # 4. SHA-256 of the big file.
        # `hash --content` runs the proof code (1 MiB block digests): verification speed.
        hs = {"tusker-cli hash": [], "tusker-cli hash --content (verification)": [], "openssl dgst -sha256": []}
        for r in range(runs):
            hs["tusker-cli hash"].append(measured([cli, "hash", str(f)]))
            hs["tusker-cli hash --content (verification)"].append(measured([cli, "hash", "--content", str(f)]))
            hs["openssl dgst -sha256"].append(measured(["openssl", "dgst", "-sha256", str(f)]))
        results["hash"] = {k: summarize(v, big) for k, v in hs.items()}
        for k, v in results["hash"].items():
            log(f"{k}: {v['mb_s']:.0f} MB/s")

        # 5. Relaunch with a full journal: time to the first resumed byte.
        data = work / "relaunch"
        clear(data)
        env = dict(os.environ, TUSKER_DATA_DIR=str(data))
        p = subprocess.Popen([cli, "upload", "--plain", "--bandwidth", "1", "--endpoint", sink_ep, str(sd)],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 300
        while True:
            try:
                with sqlite3.connect(f"file:{data / 'journal.sqlite'}?mode=ro", uri=True) as db:
                    if db.execute("SELECT count(*) FROM uploads").fetchone()[0] >= small_n:
                        break
            except sqlite3.Error:
                pass
            if time.time() > deadline:
                raise SystemExit("the relaunch journal was never filled")
            time.sleep(0.2)
        p.send_signal(signal.SIGTERM)
        p.wait(30)
        firsts = []
        for r in range(runs):
            sink.arm_first_byte()
            t0 = time.time()
            p = subprocess.Popen([cli, "resume", "--plain"], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            fb = sink.wait_first_byte(120)
            firsts.append(fb - t0)
            p.send_signal(signal.SIGTERM)
            p.wait(60)
            log(f"relaunch with {small_n} queued: first resumed byte after {(fb - t0) * 1000:.0f} ms")
        results["relaunch"] = {"queued": small_n, "first_byte_ms": median(firsts) * 1000}

        # 6. Journal cost per acknowledged PATCH (from the core crate's bench).
        profile = ["--profile", "dev"] if smoke else []
        jb = subprocess.run(["cargo", "bench", "--locked", "-q", *profile, "-p", "tusker-core", "--bench", "journal", "--",
                             "--writes", "2000" if smoke else "20000"],
                            cwd=ROOT, capture_output=True, text=True)
        if jb.returncode != 0:
            raise SystemExit(f"journal bench failed:\n{jb.stderr[-3000:]}")
        results["journal"] = json.loads(jb.stdout.strip().splitlines()[-1])
        log(f"journal write per acknowledged PATCH: {results['journal']}")
    finally:
        server.stop()
        sink.stop()
        shutil.rmtree(work, ignore_errors=True)

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    table = render(results)
    (out / "results.md").write_text(table)
    chart(results, out / "chart.png")
    print(table)
    if a.readme:
        readme = ROOT / "docs" / "performance.md"
        text = readme.read_text()
        start, end = "<!-- bench:start -->", "<!-- bench:end -->"
        if start not in text or end not in text:
            raise SystemExit("docs/performance.md has no bench markers")
        before, rest = text.split(start, 1)
        _, after = rest.split(end, 1)
        readme.write_text(before + start + "\n" + table + end + after)
        log("docs/performance.md updated")


def targets(r):
    """(target, measured, met) for every goal of issue 5."""
    b = r["big"]
    tk, js, curl = b["Tusker → @tus/server"], b["tus-js-client → @tus/server"], b["curl -T → sink"]
    tks = b["Tusker → sink (tus)"]
    sm = r["small"]
    hs = r["hash"]
    rows = [
        ("Throughput ≥ 1.3× tus-js-client (same server)", f"{tk['mb_s'] / js['mb_s']:.2f}×", tk["mb_s"] >= 1.3 * js["mb_s"]),
        ("CPU per GiB ≤ 1/3 of tus-js-client's", f"{tk['cpu_s_per_gib'] / js['cpu_s_per_gib']:.2f}×", tk["cpu_s_per_gib"] * 3 <= js["cpu_s_per_gib"]),
        ("Peak RSS ≤ 40 MiB at any size", f"{max(tk['rss_max_mib'], r['huge']['rss_max_mib']):.1f} MiB", max(tk["rss_max_mib"], r["huge"]["rss_max_mib"]) <= 40),
        ("≥ 80% of curl to the sink (Tusker to the same sink)", f"{tks['mb_s'] / curl['mb_s'] * 100:.0f}%", tks["mb_s"] >= 0.8 * curl["mb_s"]),
        ("SHA-256 ≥ 90% of openssl", f"{hs['tusker-cli hash']['mb_s'] / hs['openssl dgst -sha256']['mb_s'] * 100:.0f}%", hs["tusker-cli hash"]["mb_s"] >= 0.9 * hs["openssl dgst -sha256"]["mb_s"]),
        (f"{r['sizes']['small_n']:,} small files ≥ 3× tus-js-client (@tus/server)", f"{sm['Tusker → @tus/server']['files_s'] / sm['tus-js-client → @tus/server']['files_s']:.2f}×", sm["Tusker → @tus/server"]["files_s"] >= 3 * sm["tus-js-client → @tus/server"]["files_s"]),
        (f"… the same, client side (both to the sink)", f"{sm['Tusker → sink (tus)']['files_s'] / sm['tus-js-client → sink (tus)']['files_s']:.2f}×", sm["Tusker → sink (tus)"]["files_s"] >= 3 * sm["tus-js-client → sink (tus)"]["files_s"]),
        (f"First resumed byte < 1 s with {r['relaunch']['queued']:,} queued", f"{r['relaunch']['first_byte_ms']:.0f} ms", r["relaunch"]["first_byte_ms"] < 1000),
    ]
    return rows


def render(r):
    big = r["sizes"]["big"]
    lines = []
    kind = "smoke run (small sizes, not for comparison)" if r["smoke"] else "full run"
    lines.append(f"Measured {r['date']} on {r['machine']}; {kind}, medians of {r['big']['Tusker → @tus/server']['runs']} alternating runs.")
    lines.append("Versions: " + ", ".join(f"{k} {v}" for k, v in r["versions"].items()) + ".")
    lines.append("")
    lines.append(f"**{big / MiB:.0f} MiB file** (random data, on tmpfs; @tus/server's file store on tmpfs):")
    lines.append("")
    lines.append("| Client → server | MB/s | CPU s per GiB | Peak RSS MiB |")
    lines.append("|---|---:|---:|---:|")
    for k, v in r["big"].items():
        lines.append(f"| {k} | {v['mb_s']:.0f} | {v['cpu_s_per_gib']:.2f} | {v['rss_mib']:.1f} |")
    hu = r["huge"]
    lines.append(f"| Tusker, {r['sizes']['huge'] / GiB:g} GiB sparse file → sink | {hu['mb_s']:.0f} | {hu['cpu_s_per_gib']:.2f} | {hu['rss_mib']:.1f} |")
    lines.append("")
    lines.append(f"**{r['sizes']['small_n']:,} files of 4 KiB**, 8 uploads at a time:")
    lines.append("")
    lines.append("| Client | files/s | wall s | CPU s | Peak RSS MiB |")
    lines.append("|---|---:|---:|---:|---:|")
    for k, v in r["small"].items():
        lines.append(f"| {k} | {v['files_s']:.0f} | {v['wall_s']:.2f} | {v['cpu_s']:.2f} | {v['rss_mib']:.1f} |")
    lines.append("")
    lines.append("**SHA-256** of the same file, **relaunch** and **journal**:")
    lines.append("")
    lines.append("| Measure | Result |")
    lines.append("|---|---:|")
    for k, v in r["hash"].items():
        lines.append(f"| {k} | {v['mb_s']:.0f} MB/s |")
    lines.append(f"| `tusker-cli resume` with {r['relaunch']['queued']:,} queued: first body byte at the server | {r['relaunch']['first_byte_ms']:.0f} ms |")
    j = r["journal"]
    lines.append(f"| Journal write per acknowledged PATCH (median / p99) | {j['median_us']:.0f} / {j['p99_us']:.0f} µs |")
    lines.append("")
    lines.append("**Targets** (issue 5):")
    lines.append("")
    lines.append("| Target | Measured | Met |")
    lines.append("|---|---:|:---:|")
    for name, val, ok in targets(r):
        lines.append(f"| {name} | {val} | {'yes' if ok else '**no**'} |")
    lines.append("")
    lines.append("![benchmark chart](bench/chart.png)")
    lines.append("")
    return "\n".join(lines)


def chart(r, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(r["big"].keys())
    short = [n.replace(" → ", "\n→ ") for n in names]
    colors = ["#2b7a78" if n.startswith("Tusker") else "#9aa5b1" for n in names]
    fig, axes = plt.subplots(1, 4, figsize=(17, 4.6))
    for ax, key, title in [
        (axes[0], "mb_s", "Throughput, MB/s (higher is better)"),
        (axes[1], "cpu_s_per_gib", "Client CPU s per GiB (lower is better)"),
        (axes[2], "rss_mib", "Client peak RSS, MiB (lower is better)"),
    ]:
        vals = [r["big"][n][key] for n in names]
        ax.barh(short, vals, color=colors)
        ax.set_title(title, fontsize=10)
        ax.invert_yaxis()
        ax.tick_params(labelsize=8)
        for i, v in enumerate(vals):
            ax.text(v, i, f" {v:.0f}" if v >= 10 else f" {v:.2f}", va="center", fontsize=8)
    sm = r["small"]
    ax = axes[3]
    ks = list(sm.keys())
    vals = [sm[k]["files_s"] for k in ks]
    ax.barh([k.replace(" → ", "\n→ ") for k in ks], vals, color=["#2b7a78" if k.startswith("Tusker") else "#9aa5b1" for k in ks])
    ax.tick_params(labelsize=8)
    ax.set_title(f"{r['sizes']['small_n']:,} × 4 KiB files, files/s", fontsize=10)
    ax.invert_yaxis()
    for i, v in enumerate(vals):
        ax.text(v, i, f" {v:.0f}", va="center", fontsize=8)
    fig.suptitle(f"Tusker vs peers, {r['big'][names[0]]['runs']} runs each, {r['date']}, {r['machine'].split(',')[0]}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


if __name__ == "__main__":
    main()
