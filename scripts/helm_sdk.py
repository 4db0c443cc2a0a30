#!/usr/bin/env python3
"""`helm lint` / `helm template` through Helm's Go SDK (PyPI: helm-python-sdk, libhelm_c).

Used by scripts/helm.sh when no `helm` binary is installed. Output follows the helm CLI:
`template` prints every rendered manifest as `---\\n# Source: <chart>/<path>\\n<yaml>` in path
order (NOTES.txt and empty files left out); `lint` prints the findings and exits 1 on an error
(or, with --strict, on a warning).
"""
import argparse
import sys

try:
    import helm_python
    from helm_python import chart as helm_chart
except ImportError:
    sys.exit("helm_sdk.py: neither `helm` nor the Python package helm-python-sdk is installed; "
             "run scripts/helm-deps.sh")


def values(args):
    merged = {}

    def deep_merge(into, new):
        for k, v in new.items():
            if isinstance(v, dict) and isinstance(into.get(k), dict):
                deep_merge(into[k], v)
            else:
                into[k] = v

    for path in args.values or []:
        with open(path) as f:
            deep_merge(merged, helm_chart.values_from_yaml(f.read()))
    for expr in args.set or []:
        deep_merge(merged, helm_python.parse_set_string(expr))
    return merged


def main():
    p = argparse.ArgumentParser(prog="helm")
    sub = p.add_subparsers(dest="cmd", required=True)
    lint = sub.add_parser("lint")
    lint.add_argument("chart")
    lint.add_argument("--strict", action="store_true")
    tpl = sub.add_parser("template")
    tpl.add_argument("name")
    tpl.add_argument("chart")
    tpl.add_argument("--namespace", "-n", default="default")
    for s in (lint, tpl):
        s.add_argument("-f", "--values", action="append")
        s.add_argument("--set", action="append")
    args = p.parse_args()
    if args.cmd == "lint":
        report = helm_chart.lint(args.chart, values(args), strict=args.strict)
        names = {0: "UNKNOWN", 1: "INFO", 2: "WARNING", 3: "ERROR"}
        worst = 0
        for m in report.get("messages", []):
            worst = max(worst, m["severity"])
            print(f"[{names.get(m['severity'], m['severity'])}] {m['path']}: {m['error']}")
        for e in report.get("errors") or []:
            print(f"[ERROR] {e}")
            worst = 3
        failed = worst >= 3 or (args.strict and worst >= 2)
        print(f"{report.get('total_charts_linted', 0)} chart(s) linted, "
              f"{1 if failed else 0} chart(s) failed")
        sys.exit(1 if failed else 0)
    c = helm_python.Chart.load(args.chart)
    rendered = c.render(values(args), name=args.name, namespace=args.namespace, is_install=True)
    for path in sorted(rendered):
        text = rendered[path].strip()
        if not text or path.endswith("NOTES.txt"):
            continue
        print(f"---\n# Source: {path}\n{text}")


if __name__ == "__main__":
    main()
