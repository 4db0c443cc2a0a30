#!/usr/bin/env python3
"""Writes the Grafana dashboards in dashboards/grafana/*.json.

The JSON files are committed; edit this file and re-run `python3 dashboards/generate.py`
(optional argument: another output directory) to change them. loadgen/tests/dashboards.rs checks
that the committed JSON is what this writes, validates it, and runs every query live.
Every panel's datasource is the dashboard variable ${DS_PROMETHEUS}; `job` / `instance`
(and `fkload_job`) are multi-value variables whose "All" value is the regex `.*`, so every
selector uses `=~`. Quantiles by op / stage end in `> 0`, which drops the NaN series of ops
that saw no requests in the window.
"""
import json
import os
import sys

DS = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
SEL = 'job=~"$job",instance=~"$instance"'
FK = 'job=~"$fkload_job"'
RI = "$__rate_interval"


class Board:
    def __init__(self, uid, title, description, tags):
        self.uid, self.title, self.description, self.tags = uid, title, description, tags
        self.panels, self.next_id, self.x, self.y, self.row_h = [], 1, 0, 0, 0
        self.variables = [datasource_var()]

    def _place(self, w, h):
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        pos = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def row(self, title):
        if self.x:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        self.panels.append({"id": self._id(), "type": "row", "title": title, "collapsed": False,
                            "gridPos": {"x": 0, "y": self.y, "w": 24, "h": 1}, "panels": []})
        self.y += 1

    def _id(self):
        i = self.next_id
        self.next_id += 1
        return i

    def panel(self, kind, title, targets, unit="short", w=12, h=8, description="", **extra):
        refs = "ABCDEFGHIJ"
        panel = {
            "id": self._id(),
            "type": kind,
            "title": title,
            "description": description,
            "datasource": DS,
            "gridPos": self._place(w, h),
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {"legend": {"displayMode": "table", "placement": "bottom",
                                   "calcs": ["mean", "max", "lastNotNull"]},
                        "tooltip": {"mode": "multi", "sort": "desc"}},
            "targets": [
                {"refId": refs[i], "datasource": DS, "expr": expr, "legendFormat": legend,
                 "range": True, "instant": False, "editorMode": "code"}
                for i, (expr, legend) in enumerate(targets)
            ],
        }
        if kind == "timeseries":
            panel["fieldConfig"]["defaults"]["custom"] = {"drawStyle": "line", "lineWidth": 1,
                                                          "fillOpacity": 10, "showPoints": "never",
                                                          "spanNulls": True}
        if kind == "stat":
            panel["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                                "colorMode": "value", "graphMode": "area", "textMode": "auto",
                                "orientation": "auto"}
        if kind == "table":
            panel["options"] = {"showHeader": True}
            for t in panel["targets"]:
                t.update({"instant": True, "range": False, "format": "table"})
        panel.update(extra)
        self.panels.append(panel)

    def ts(self, title, targets, unit="short", **kw):
        self.panel("timeseries", title, targets, unit, **kw)

    def json(self):
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": self.tags,
            "editable": True,
            "graphTooltip": 1,
            "refresh": "5s",
            "schemaVersion": 38,
            "version": 1,
            "time": {"from": "now-15m", "to": "now"},
            "timepicker": {"refresh_intervals": ["1s", "5s", "10s", "30s", "1m"]},
            "timezone": "",
            "annotations": {"list": []},
            "links": [{"type": "dashboards", "tags": ["ferrokeeper"], "asDropdown": True,
                       "title": "ferrokeeper", "includeVars": True, "keepTime": True}],
            "templating": {"list": self.variables},
            "panels": self.panels,
        }


def datasource_var():
    return {"name": "DS_PROMETHEUS", "label": "Data source", "type": "datasource",
            "query": "prometheus", "regex": "", "hide": 0, "refresh": 1, "current": {},
            "options": [], "includeAll": False, "multi": False}


def query_var(name, label, query):
    return {"name": name, "label": label, "type": "query", "datasource": DS,
            "definition": query, "query": {"query": query, "refId": name},
            "refresh": 2, "includeAll": True, "multi": True, "allValue": ".*",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "options": [], "sort": 1, "hide": 0, "regex": ""}


SERVER_VARS = [
    query_var("job", "Job", "label_values(ferrokeeper_role, job)"),
    query_var("instance", "Node", 'label_values(ferrokeeper_role{job=~"$job"}, instance)'),
]


def quantiles(metric, by, sel, legend, qs=(0.5, 0.99)):
    return [(f"histogram_quantile({q}, sum by ({by}, le) (rate({metric}_bucket{{{sel}}}[{RI}])))",
             f"{legend} p{int(q * 100) if q * 100 == int(q * 100) else q * 100}") for q in qs]


def overview():
    b = Board("ferrokeeper-overview", "ferrokeeper / Cluster overview",
              "Throughput, latency by op, errors, sessions, znodes and role of every node.",
              ["ferrokeeper"])
    b.variables += SERVER_VARS
    b.row("Requests")
    b.panel("stat", "Requests/s (selected nodes)",
            [(f"sum(rate(ferrokeeper_request_duration_seconds_count{{{SEL}}}[{RI}]))", "req/s")],
            "reqps", w=6, h=4)
    b.panel("stat", "Errors/s",
            [(f"sum(rate(ferrokeeper_request_errors_total{{{SEL}}}[{RI}]))", "errors/s")],
            "reqps", w=6, h=4)
    b.panel("stat", "Live sessions (max over nodes)",
            [(f"max(ferrokeeper_sessions{{{SEL}}})", "sessions")], "short", w=6, h=4)
    b.panel("stat", "Znodes (max over nodes)",
            [(f"max(ferrokeeper_znodes{{{SEL}}})", "znodes")], "short", w=6, h=4)
    b.ts("Throughput by op",
         [(f"sum by (op) (rate(ferrokeeper_request_duration_seconds_count{{{SEL}}}[{RI}]) > 0)", "{{op}}")],
         "reqps")
    b.ts("Throughput by node",
         [(f"sum by (instance) (rate(ferrokeeper_request_duration_seconds_count{{{SEL}}}[{RI}]))",
           "{{instance}}")], "reqps")
    b.ts("Latency p50 by op",
         [(f"histogram_quantile(0.5, sum by (op, le) (rate(ferrokeeper_request_duration_seconds_bucket{{{SEL}}}[{RI}]))) > 0",
           "{{op}}")], "s")
    b.ts("Latency p99 by op",
         [(f"histogram_quantile(0.99, sum by (op, le) (rate(ferrokeeper_request_duration_seconds_bucket{{{SEL}}}[{RI}]))) > 0",
           "{{op}}")], "s")
    b.ts("Latency p99.9 by op",
         [(f"histogram_quantile(0.999, sum by (op, le) (rate(ferrokeeper_request_duration_seconds_bucket{{{SEL}}}[{RI}]))) > 0",
           "{{op}}")], "s")
    b.ts("Mean latency by node",
         [(f"sum by (instance) (rate(ferrokeeper_request_duration_seconds_sum{{{SEL}}}[{RI}])) / "
           f"sum by (instance) (rate(ferrokeeper_request_duration_seconds_count{{{SEL}}}[{RI}]))",
           "{{instance}}")], "s")
    b.ts("Errors by code",
         [(f"sum by (code) (rate(ferrokeeper_request_errors_total{{{SEL}}}[{RI}]))", "code {{code}}")],
         "reqps", description="ZooKeeper error codes: -101 NoNode, -110 NodeExists, -103 BadVersion, ...")
    b.ts("Errors by node",
         [(f"sum by (instance) (rate(ferrokeeper_request_errors_total{{{SEL}}}[{RI}]))", "{{instance}}")],
         "reqps")
    b.row("State")
    b.ts("Sessions and connections",
         [(f"ferrokeeper_sessions{{{SEL}}}", "sessions {{instance}}"),
          (f"ferrokeeper_connections{{{SEL}}}", "connections {{instance}}")])
    b.ts("Znodes, ephemerals, watches",
         [(f"ferrokeeper_znodes{{{SEL}}}", "znodes {{instance}}"),
          (f"ferrokeeper_ephemerals{{{SEL}}}", "ephemerals {{instance}}"),
          (f"ferrokeeper_watches{{{SEL}}}", "watches {{instance}}")])
    b.ts("Approximate data size",
         [(f"ferrokeeper_approximate_data_size_bytes{{{SEL}}}", "{{instance}}")], "bytes")
    b.panel("table", "Role per node",
            [(f"ferrokeeper_role{{{SEL}}} == 1", "{{instance}} {{role}}")], "short",
            transformations=[{"id": "organize", "options": {
                "excludeByName": {"Time": True, "Value": True, "__name__": True},
                "indexByName": {"instance": 0, "role": 1, "job": 2}}}])
    b.ts("Role over time (1 = leader, 2 = follower, 3 = observer, 4 = looking, 5 = read-only, 0 = standalone)",
         [(f'max by (instance) ((ferrokeeper_role{{{SEL},role="leader"}} == 1) * 1 '
           f'or (ferrokeeper_role{{{SEL},role="follower"}} == 1) * 2 '
           f'or (ferrokeeper_role{{{SEL},role="observer"}} == 1) * 3 '
           f'or (ferrokeeper_role{{{SEL},role="looking"}} == 1) * 4 '
           f'or (ferrokeeper_role{{{SEL},role="read-only"}} == 1) * 5 '
           f'or (ferrokeeper_role{{{SEL},role="standalone"}} == 1) * 0)', "{{instance}}")], w=24)
    return b


def quorum():
    b = Board("ferrokeeper-quorum-disk", "ferrokeeper / Quorum commit and disk",
              "Where a write spends its time (commit stages), the txn log's fsyncs and batches, "
              "queues, zxid/epoch per node and elections.", ["ferrokeeper"])
    b.variables += SERVER_VARS
    b.row("Commit pipeline")
    b.ts("Commit stage p50",
         [(f"histogram_quantile(0.5, sum by (stage, le) (rate(ferrokeeper_commit_stage_duration_seconds_bucket{{{SEL}}}[{RI}]))) > 0",
           "{{stage}}")], "s",
         description="queue_wait, log_fsync (standalone), quorum_ack (ensemble), apply, end_to_end")
    b.ts("Commit stage p99",
         [(f"histogram_quantile(0.99, sum by (stage, le) (rate(ferrokeeper_commit_stage_duration_seconds_bucket{{{SEL}}}[{RI}]))) > 0",
           "{{stage}}")], "s")
    b.ts("Mean time per stage and node",
         [(f"sum by (instance, stage) (rate(ferrokeeper_commit_stage_duration_seconds_sum{{{SEL}}}[{RI}])) / "
           f"sum by (instance, stage) (rate(ferrokeeper_commit_stage_duration_seconds_count{{{SEL}}}[{RI}]))",
           "{{instance}} {{stage}}")], "s")
    b.ts("End-to-end write latency p99 by node",
         [(f'histogram_quantile(0.99, sum by (instance, le) (rate(ferrokeeper_commit_stage_duration_seconds_bucket{{{SEL},stage="end_to_end"}}[{RI}])))',
           "{{instance}}")], "s")
    b.row("Transaction log")
    b.ts("fsync (write + fdatasync) p50 / p99",
         quantiles("ferrokeeper_txnlog_fsync_duration_seconds", "instance", SEL, "{{instance}}"), "s")
    b.ts("Log writes",
         [(f"sum by (instance) (rate(ferrokeeper_txnlog_written_txns_total{{{SEL}}}[{RI}]))", "txns/s {{instance}}"),
          (f"sum by (instance) (rate(ferrokeeper_txnlog_fsync_duration_seconds_count{{{SEL}}}[{RI}]))", "fsyncs/s {{instance}}")],
         "ops")
    b.ts("Txns per batch (group commit)",
         [(f"sum by (instance) (rate(ferrokeeper_txnlog_batch_txns_sum{{{SEL}}}[{RI}])) / "
           f"sum by (instance) (rate(ferrokeeper_txnlog_batch_txns_count{{{SEL}}}[{RI}]))", "mean {{instance}}"),
          (f"histogram_quantile(0.99, sum by (instance, le) (rate(ferrokeeper_txnlog_batch_txns_bucket{{{SEL}}}[{RI}])))",
           "p99 {{instance}}")])
    b.ts("Bytes per batch",
         [(f"sum by (instance) (rate(ferrokeeper_txnlog_batch_bytes_sum{{{SEL}}}[{RI}])) / "
           f"sum by (instance) (rate(ferrokeeper_txnlog_batch_bytes_count{{{SEL}}}[{RI}]))", "mean {{instance}}"),
          (f"sum by (instance) (rate(ferrokeeper_txnlog_written_bytes_total{{{SEL}}}[{RI}]))", "bytes/s {{instance}}")],
         "bytes")
    b.ts("Log queue depth",
         [(f"ferrokeeper_txnlog_queue_depth{{{SEL}}}", "{{instance}}")])
    b.ts("Outstanding requests",
         [(f"ferrokeeper_outstanding_requests{{{SEL}}}", "{{instance}}")])
    b.panel("table", "Log backend and segments",
            [(f"ferrokeeper_txnlog_backend_info{{{SEL}}}", "{{instance}} {{backend}}"),
             (f"ferrokeeper_txnlog_segments_total{{{SEL}}}", "{{instance}}")], "short")
    b.ts("Snapshots",
         [(f"ferrokeeper_snapshot_size_bytes{{{SEL}}}", "last size {{instance}}"),
          (f"increase(ferrokeeper_snapshot_duration_seconds_count{{{SEL}}}[5m])", "taken in 5m {{instance}}"),
          (f"increase(ferrokeeper_snapshot_serialize_duration_seconds_sum{{{SEL}}}[5m])",
           "core time serializing in 5m (s) {{instance}}")],
         "short",
         description="The core task serializes a snapshot in chunks of 1024 nodes between batches of "
                     "requests; a thread of its own writes the file.")
    b.row("Ensemble")
    b.ts("Last applied zxid (counter part)",
         [(f"ferrokeeper_last_zxid{{{SEL}}} % 4294967296", "{{instance}}")],
         description="The low 32 bits of the zxid; the epoch is the high 32 bits (next panel).")
    b.ts("zxid lag behind the most advanced node",
         [(f"scalar(max(ferrokeeper_last_zxid{{{SEL}}})) - ferrokeeper_last_zxid{{{SEL}}}", "{{instance}}")])
    b.ts("Epoch",
         [(f"ferrokeeper_epoch{{{SEL}}}", "{{instance}}")])
    b.ts("Elections",
         [(f"ferrokeeper_elections_total{{{SEL}}}", "total {{instance}}"),
          (f"increase(ferrokeeper_elections_total{{{SEL}}}[5m])", "in 5m {{instance}}")])
    b.ts("Election duration",
         [(f"ferrokeeper_election_duration_seconds_sum{{{SEL}}} / ferrokeeper_election_duration_seconds_count{{{SEL}}}",
           "mean {{instance}}"),
          (f"histogram_quantile(0.99, sum by (instance, le) (ferrokeeper_election_duration_seconds_bucket{{{SEL}}}))",
           "p99 {{instance}}")],
         "s", description="LOOKING until leading or following, over this process's life.")
    return b


def loadgen():
    b = Board("ferrokeeper-loadgen", "ferrokeeper / Load generator (fkload)",
              "fkload's own view (throughput, latency, errors, per op and target) next to the servers'.",
              ["ferrokeeper", "fkload"])
    b.variables += [query_var("fkload_job", "fkload job", "label_values(fkload_ops_total, job)")] + SERVER_VARS
    b.row("fkload")
    b.ts("fkload throughput by op",
         [(f"sum by (op) (rate(fkload_ops_total{{{FK}}}[{RI}]) > 0)", "{{op}}")], "ops")
    b.ts("fkload latency p50 / p99 by op",
         [(f"histogram_quantile(0.5, sum by (op, le) (rate(fkload_latency_seconds_bucket{{{FK}}}[{RI}]))) > 0", "p50 {{op}}"),
          (f"histogram_quantile(0.99, sum by (op, le) (rate(fkload_latency_seconds_bucket{{{FK}}}[{RI}]))) > 0", "p99 {{op}}")],
         "s")
    # fkload creates every error series of its workload's ops at 0 (as the servers do for every
    # error code): "no errors" is a zero line, and no data means no scrape.
    b.ts("fkload errors by op and code",
         [(f"sum by (op, code) (rate(fkload_errors_total{{{FK}}}[{RI}]))", "{{op}} {{code}}")], "ops")
    b.ts("fkload error ratio",
         [(f"sum(rate(fkload_errors_total{{{FK}}}[{RI}])) / "
           f"sum(rate(fkload_ops_total{{{FK}}}[{RI}]))", "errors / ops")], "percentunit")
    b.row("fkload next to the servers")
    b.ts("Throughput: fkload vs servers",
         [(f"sum(rate(fkload_ops_total{{{FK}}}[{RI}]))", "fkload ops/s"),
          (f"sum(rate(ferrokeeper_request_duration_seconds_count{{{SEL}}}[{RI}]))", "servers requests/s")],
         "ops")
    b.ts("Read latency p99: fkload (client) vs servers",
         [(f'histogram_quantile(0.99, sum by (le) (rate(fkload_latency_seconds_bucket{{{FK},op="get"}}[{RI}])))', "fkload get p99"),
          (f'histogram_quantile(0.99, sum by (le) (rate(ferrokeeper_request_duration_seconds_bucket{{{SEL},op="getData"}}[{RI}])))', "servers getData p99")],
         "s")
    b.ts("Write latency p99: fkload (client) vs servers",
         [(f'histogram_quantile(0.99, sum by (le) (rate(fkload_latency_seconds_bucket{{{FK},op=~"set|multi|create"}}[{RI}])))', "fkload writes p99"),
          (f'histogram_quantile(0.99, sum by (le) (rate(ferrokeeper_commit_stage_duration_seconds_bucket{{{SEL},stage="end_to_end"}}[{RI}])))', "servers end_to_end p99")],
         "s")
    b.ts("Errors: fkload vs servers",
         [(f"sum(rate(fkload_errors_total{{{FK}}}[{RI}]))", "fkload errors/s"),
          (f"sum(rate(ferrokeeper_request_errors_total{{{SEL}}}[{RI}]))", "servers errors/s")],
         "ops")
    b.ts("fkload throughput by target",
         [(f"sum by (target) (rate(fkload_ops_total{{{FK}}}[{RI}]))", "{{target}}")], "ops", w=24)
    return b


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "grafana")
    os.makedirs(out, exist_ok=True)
    for board in (overview(), quorum(), loadgen()):
        path = os.path.join(out, board.uid + ".json")
        with open(path, "w") as f:
            json.dump(board.json(), f, indent=2)
            f.write("\n")
        print(path)


if __name__ == "__main__":
    main()
