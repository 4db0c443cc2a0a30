#!/usr/bin/env python3
"""summary.md of a scripts/fault-compare.sh run: one table over the implementations, then per
implementation every kill and every restart as fkload's result JSON reports them."""
import json
import statistics
import sys

out, impls = sys.argv[1], sys.argv[2:]
head = ["# Leader kills under write-heavy load", "",
        "3-node loopback ensembles from `scripts/cluster-zk.sh` (tickTime=2000, forceSync=yes), "
        "fkload `faults:` schedule (`workload.yaml`): the leader, found through `srvr` when due, is "
        "SIGKILLed and restarted 4 s later. Window = first failed or stalled write -> first success of "
        "a write sent after it; gap = longest any session waited to write; ops = ops completed between "
        "the kill and the restart. One machine, 2 cores, shared with other work.", "",
        "| implementation | kills carried out | median window ms | min | max | median session gap ms | "
        "median latency peak ms | every acked write readable |",
        "|---|---:|---:|---:|---:|---:|---:|---|"]
body = []


def row(i, f, kill):
    e = f["event"]
    failed = f" ACTION FAILED: {e['error']}" if e.get("error") else ""
    node = f"{e.get('node') or '-'} | " if kill else ""
    rec = f" | {f['recovered']}" if kill else ""
    return (f"| {i} | {e['t']:.1f} | {node}{f['write_unavailable_ms']:.0f} | "
            f"{f.get('session_write_gap_max_ms', 0):.0f} | {f['latency_peak_ms']:.0f} | {f['ops']} | "
            f"{f['errors_by_code']} | {f['sessions_expired']}{rec}{failed} |")


for impl in impls:
    r = json.load(open(f"{out}/{impl}.json"))
    kills = [f for f in r["faults"] if f["event"]["action"] == "kill"]
    restarts = [f for f in r["faults"] if f["event"]["action"] == "restart"]
    done = [f for f in kills if not f["event"].get("error")]
    d = r.get("durability") or {}
    codes = {k: v for o in r["ops"].values() for k, v in o.get("error_codes", {}).items()}
    body += ["", f"## {impl}", "",
             f"{r['totals']['ops']} ops, {r['totals']['throughput']:.0f} ops/s overall, "
             f"{r['totals']['errors']} errors {codes}. Acknowledged writes: {d.get('acked_writes', 0)}, "
             f"{d.get('keys_checked', 0)} keys read back, lost {len(d.get('lost', []))}, unreadable "
             f"{len(d.get('unreadable', []))}: **{'none lost' if d.get('ok') else 'CHECK FAILED'}**.", "",
             "| kill | t (s) | node | window ms | session gap ms | latency peak ms | ops | errors | "
             "sessions expired | recovered |",
             "|---:|---:|---:|---:|---:|---:|---:|---|---:|---|"]
    body += [row(i, f, True) for i, f in enumerate(kills, 1)]
    body += ["", "After each restart (until the next kill):", "",
             "| restart | t (s) | window ms | session gap ms | latency peak ms | ops | errors | sessions expired |",
             "|---:|---:|---:|---:|---:|---:|---|---:|"]
    body += [row(i, f, False) for i, f in enumerate(restarts, 1)]
    w = [f["write_unavailable_ms"] for f in done]
    if w:
        head.append(
            f"| {impl} | {len(done)} of {len(kills)} | {statistics.median(w):.0f} | {min(w):.0f} | {max(w):.0f} | "
            f"{statistics.median([f.get('session_write_gap_max_ms', 0) for f in done]):.0f} | "
            f"{statistics.median([f['latency_peak_ms'] for f in done]):.0f} | {'yes' if d.get('ok') else 'NO'} |")
    else:
        head.append(f"| {impl} | 0 of {len(kills)} | - | - | - | - | - | {'yes' if d.get('ok') else 'NO'} |")
text = "\n".join(head + body) + "\n"
open(f"{out}/summary.md", "w").write(text)
print(text)
