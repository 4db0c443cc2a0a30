#!/usr/bin/env python3
"""Where a committed write's CPU goes, ferrokeeper vs Apache ZooKeeper, 3-node ensembles on
127.0.0.1, the same client (fkload) and load (100 % setData of 1 KiB, 32 sessions x 4 in
flight, spread over the three nodes, forceSync on).

For each server kind, after a warm-up run of the same length:
  * a measured run: utime+stime of every server process and thread from /proc, voluntary and
    involuntary context switches of every thread: per committed write, per role and per thread
    (the threads are grouped by name);
  * a second run under `strace -c -f` attached to every server process: syscalls per committed
    write by name (strace slows the servers down; its throughput is not reported).

Writes a markdown report (default benches/write-path/<UTC date>.md).

    python3 scripts/profile-write-path.py [--duration 10] [--out FILE] [--impl ferrokeeper,zookeeper]
"""

import argparse
import collections
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HZ = os.sysconf("SC_CLK_TCK")


def run(cmd, env=None, check=True, capture=True):
    full_env = dict(os.environ, **(env or {}))
    result = subprocess.run(cmd, cwd=ROOT, env=full_env, check=check, text=True,
                            stdout=subprocess.PIPE if capture else None, stderr=subprocess.STDOUT)
    return result.stdout if capture else ""


def cluster(impl, workdir, verb):
    env = {
        "FK_IMPL": impl,
        "FK_CLUSTER_DIR": os.path.join(workdir, impl),
        # Ports of their own, so a cluster of another script or test does not collide.
        "FK_CLIENT_PORT_BASE": os.environ.get("FK_CLIENT_PORT_BASE", "31810"),
        "FK_PEER_PORT_BASE": os.environ.get("FK_PEER_PORT_BASE", "32880"),
        "FK_ELECTION_PORT_BASE": os.environ.get("FK_ELECTION_PORT_BASE", "33880"),
    }
    return run(["bash", "scripts/cluster-zk.sh", verb, "3"], env=env)


def pids(impl, workdir):
    out = {}
    for node in (1, 2, 3):
        with open(os.path.join(workdir, impl, f"node{node}", "pid")) as f:
            out[node] = int(f.read().strip())
    return out


def roles(impl, workdir):
    status = cluster(impl, workdir, "status")
    found = {}
    for line in status.splitlines():
        m = re.match(r"node (\d+) .*Mode: (\w+)", line)
        if m:
            found[int(m.group(1))] = m.group(2)
    return found


def threads(pid):
    """{tid: (name, cpu ticks, voluntary switches, involuntary switches)} of a process."""
    out = {}
    task_dir = f"/proc/{pid}/task"
    for tid in os.listdir(task_dir):
        try:
            with open(f"{task_dir}/{tid}/stat") as f:
                stat = f.read()
            name = stat[stat.index("(") + 1: stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2:].split()
            ticks = int(fields[11]) + int(fields[12])
            vol = invol = 0
            with open(f"{task_dir}/{tid}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches"):
                        vol = int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches"):
                        invol = int(line.split()[1])
            out[int(tid)] = (name, ticks, vol, invol)
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return out


def group_name(name):
    # Java and tokio number their threads: group "tokio-runtime-w", "NIOWorkerThread-3", ...
    return re.sub(r"[-_:#]?\d+$", "", name).strip() or name


def fkload(target, duration, out_json, skip_setup):
    cmd = ["./target/release/fkload", "run", "-w", "loadgen/workloads/write-heavy.yaml", "-t", target,
           "--duration", str(duration), "--warmup", "0", "--no-progress", "--no-server-stats", "--out", out_json]
    if skip_setup:
        cmd.append("--skip-setup")
    run(cmd)
    with open(out_json) as f:
        result = json.load(f)
    return result["totals"]["ops"], result["totals"]["errors"], result["totals"]["throughput"]


def profile(impl, workdir, duration, warmup):
    cluster(impl, workdir, "start")
    try:
        target = cluster(impl, workdir, "connect").strip()
        tmp = os.path.join(workdir, f"{impl}.json")
        fkload(target, warmup, tmp, skip_setup=False)  # warm-up (and key tree)
        procs = pids(impl, workdir)
        role = roles(impl, workdir)
        before = {node: threads(pid) for node, pid in procs.items()}
        ops, errors, throughput = fkload(target, duration, tmp, skip_setup=True)
        after = {node: threads(pid) for node, pid in procs.items()}
        per_role = collections.defaultdict(lambda: [0, 0, 0])
        per_thread = collections.defaultdict(lambda: [0, 0, 0])
        for node in procs:
            for tid, (name, ticks, vol, invol) in after[node].items():
                b = before[node].get(tid, (name, 0, 0, 0))
                delta = (ticks - b[1], vol - b[2], invol - b[3])
                r = role.get(node, "?")
                for acc in (per_role[r], per_thread[(r, group_name(name))]):
                    for i in range(3):
                        acc[i] += delta[i]
        # Syscalls: a second run with strace attached to every server process.
        strace_out = os.path.join(workdir, f"{impl}.strace")
        attach = ["strace", "-c", "-f", "-o", strace_out]
        for pid in procs.values():
            attach += ["-p", str(pid)]
        tracer = subprocess.Popen(attach, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            traced_ops, _, _ = fkload(target, max(3, duration // 2), tmp, skip_setup=True)
        finally:
            tracer.terminate()
            tracer.wait(timeout=30)
        syscalls = {}
        total_calls = 0
        with open(strace_out) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 5 and re.match(r"^[\d.]+$", parts[0]) and parts[-1] not in ("total",):
                    calls = int(parts[3])
                    syscalls[parts[-1]] = calls
                    total_calls += calls
        return {
            "ops": ops, "errors": errors, "throughput": throughput, "per_role": dict(per_role),
            "per_thread": dict(per_thread), "syscalls": syscalls, "syscall_total": total_calls,
            "traced_ops": traced_ops, "roles": role,
        }
    finally:
        cluster(impl, workdir, "stop")


def us_per_op(ticks, ops):
    return ticks / HZ * 1e6 / max(ops, 1)


def runtime_thread(name):
    """JIT compiler and GC threads: the JVM's warm-up and housekeeping, not the write path."""
    return any(name.startswith(p) for p in ("C1 Compiler", "C2 Compiler", "GC Thread", "G1 ", "VM Thread"))


def report(results, duration, warmup):
    lines = []
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
    commit = run(["git", "rev-parse", "--short", "HEAD"]).strip()
    lines.append(f"# Where a committed write's CPU goes ({now}, ferrokeeper {commit}, {os.cpu_count()} cores)")
    lines.append("")
    lines.append(f"`python3 scripts/profile-write-path.py --duration {duration} --warmup {warmup}`: 3-node ensembles "
                 "on 127.0.0.1, fkload write-heavy (100 % setData 1 KiB, 32 sessions x 4 in flight over the three "
                 f"nodes, forceSync on), after a {warmup} s warm-up run. CPU = utime+stime from /proc of every "
                 "server thread during the measured run (also without the JVM's JIT compiler and GC threads); "
                 "syscalls from a second run under `strace -c -f`.")
    lines.append("")
    lines.append("| server | writes/s | errors | server CPU µs / write | without JIT/GC threads | context switches / write (vol + invol) | syscalls / write |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|")
    for impl, r in results.items():
        ticks = sum(v[0] for v in r["per_role"].values())
        work = sum(v[0] for (_, name), v in r["per_thread"].items() if not runtime_thread(name))
        switches = sum(v[1] + v[2] for v in r["per_role"].values())
        lines.append(f"| {impl} | {r['throughput']:.0f} | {r['errors']} | {us_per_op(ticks, r['ops']):.1f} | "
                     f"{us_per_op(work, r['ops']):.1f} | {switches / max(r['ops'], 1):.1f} | "
                     f"{r['syscall_total'] / max(r['traced_ops'], 1):.1f} |")
    lines.append("")
    lines.append("## By role")
    lines.append("")
    lines.append("| server | role | CPU µs / write | context switches / write |")
    lines.append("|---|---|---:|---:|")
    for impl, r in results.items():
        for role, (ticks, vol, invol) in sorted(r["per_role"].items()):
            lines.append(f"| {impl} | {role} | {us_per_op(ticks, r['ops']):.1f} | {(vol + invol) / max(r['ops'], 1):.1f} |")
    lines.append("")
    lines.append("## By thread (grouped by name; threads above 0.5 µs / write)")
    lines.append("")
    lines.append("| server | role | thread | CPU µs / write | context switches / write |")
    lines.append("|---|---|---|---:|---:|")
    for impl, r in results.items():
        rows = sorted(r["per_thread"].items(), key=lambda kv: -kv[1][0])
        for (role, name), (ticks, vol, invol) in rows:
            cpu = us_per_op(ticks, r["ops"])
            if cpu >= 0.5:
                lines.append(f"| {impl} | {role} | `{name}` | {cpu:.1f} | {(vol + invol) / max(r['ops'], 1):.2f} |")
    lines.append("")
    lines.append("## Syscalls per write (all three servers, top 12)")
    lines.append("")
    lines.append("| server | syscall | per write |")
    lines.append("|---|---|---:|")
    for impl, r in results.items():
        for name, calls in sorted(r["syscalls"].items(), key=lambda kv: -kv[1])[:12]:
            lines.append(f"| {impl} | {name} | {calls / max(r['traced_ops'], 1):.2f} |")
    lines.append("")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=30, help="seconds of the same load first (JIT)")
    parser.add_argument("--impl", default="zookeeper,ferrokeeper")
    parser.add_argument("--out")
    args = parser.parse_args()
    out = args.out or os.path.join(
        ROOT, "benches", "write-path", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d") + ".md")
    run(["bash", "scripts/install-test-deps.sh"])
    run(["cargo", "build", "--release", "-q", "-p", "ferrokeeper-server", "-p", "ferrokeeper-loadgen"])
    results = {}
    with tempfile.TemporaryDirectory(prefix="fk-profile-") as workdir:
        for impl in args.impl.split(","):
            print(f"== {impl}", file=sys.stderr)
            results[impl] = profile(impl, workdir, args.duration, args.warmup)
    text = report(results, args.duration, args.warmup)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        f.write(text)
    print(text)
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
