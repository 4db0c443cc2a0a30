#!/usr/bin/env bash
# End-to-end performance gate that tolerates noise. Runs a short fkload against a standalone
# ferrokeeper server built from the current tree (B) and from a reference (A), interleaved
# A B A B ... (one fresh server per run), and fails only when B is worse than A by more than the
# threshold in EVERY round of the same workload. `fkload compare` prints each pair's table.
#
#   scripts/bench-e2e-gate.sh                      # A = HEAD~1 (built in a temporary worktree)
#   scripts/bench-e2e-gate.sh --ref origin/main    # or FK_GATE_REF=origin/main
#   scripts/bench-e2e-gate.sh --ref-bin /path/to/ferrokeeper   # prebuilt reference binary
#   scripts/bench-e2e-gate.sh --baseline benches/matrix/gate-baseline   # CI mode: stored JSONs
#   scripts/bench-e2e-gate.sh --record-baseline DIR                    # write such a baseline
#
# Options (environment in brackets):
#   --ref REF            [FK_GATE_REF, default HEAD~1] git ref for A
#   --ref-bin PATH       [FK_GATE_REF_BIN] use this ferrokeeper binary as A (no reference build)
#   --baseline DIR       [FK_GATE_BASELINE] A = DIR/<workload>.json recorded by --record-baseline
#   --record-baseline D  run the current tree --rounds times; store the median run per workload
#   --rounds N           [FK_GATE_ROUNDS, 3] rounds (each: one A run and one B run)
#   --duration S         [FK_GATE_DURATION, 5] measured seconds per workload (warm-up 1 s)
#   --threshold P        [FK_GATE_THRESHOLD, 25] percent; regression = B ops/s < A ops/s x (1-P/100)
#   --workloads LIST     [FK_GATE_WORKLOADS, write-heavy,read-heavy]
#   --no-build           use target/release/{ferrokeeper,fkload} as they are
# Also: FK_GATE_A_CFG / FK_GATE_B_CFG (extra zoo.cfg lines for the A / B server, e.g.
# FK_GATE_B_CFG=flushDelay=50 to inject a slowdown), FORCE_SYNC (yes), FK_GATE_PORT (48810),
# FK_GATE_REF_TARGET (cargo target dir for the reference build, default target/gate-ref: kept,
# so a rerun against the same commit reuses the binary), FK_GATE_OUT (results dir, default
# target/e2e-gate/<UTC time>: result JSONs, fkload compare tables, gate-summary.json).
# Exit: 0 pass, 1 regression, 2 setup error.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
ref=${FK_GATE_REF:-HEAD~1}
ref_bin=${FK_GATE_REF_BIN:-}
baseline=${FK_GATE_BASELINE:-}
record=""
rounds=${FK_GATE_ROUNDS:-3}
duration=${FK_GATE_DURATION:-5}
threshold=${FK_GATE_THRESHOLD:-25}
workloads=${FK_GATE_WORKLOADS:-write-heavy,read-heavy}
build=yes
while [ $# -gt 0 ]; do
  case "$1" in
    --ref) ref=$2; shift 2 ;;
    --ref-bin) ref_bin=$2; shift 2 ;;
    --baseline) baseline=$2; shift 2 ;;
    --record-baseline) record=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --threshold) threshold=${2%\%}; shift 2 ;;
    --workloads) workloads=$2; shift 2 ;;
    --no-build) build=no; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
IFS=, read -r -a wls <<<"$workloads"
port=${FK_GATE_PORT:-48810}
export FORCE_SYNC=${FORCE_SYNC:-yes}
t_start=$SECONDS
work=$(mktemp -d /tmp/fk-e2e-gate.XXXXXX)
out=${FK_GATE_OUT:-$root/target/e2e-gate/$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$out"
ref_tree=""
started=()

cleanup() {
  local d
  for d in "${started[@]}"; do
    FK_IMPL=ferrokeeper FK_CLUSTER_DIR="$d" scripts/cluster-zk.sh stop 1 >/dev/null 2>&1 || true
  done
  if [ -n "$ref_tree" ]; then
    git -C "$root" worktree remove --force "$ref_tree" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say() { printf '[e2e-gate %4ss] %s\n' "$((SECONDS - t_start))" "$*"; }

# ---- build ------------------------------------------------------------------------------------
if [ "$build" = yes ]; then
  say "building the current tree (release: ferrokeeper-server, ferrokeeper-loadgen)"
  t=$SECONDS
  cargo build --release -q -p ferrokeeper-server -p ferrokeeper-loadgen || exit 2
  say "current tree built in $((SECONDS - t)) s"
fi
fkload=$root/target/release/fkload
bin_b=$work/ferrokeeper-B
cp "$root/target/release/ferrokeeper" "$bin_b" || exit 2

mode=ref
if [ -n "$record" ]; then
  mode=record
elif [ -n "$baseline" ]; then
  mode=baseline
  for wl in "${wls[@]}"; do
    [ -f "$baseline/$wl.json" ] || { echo "missing $baseline/$wl.json (record it with --record-baseline)" >&2; exit 2; }
  done
elif [ -n "$ref_bin" ]; then
  [ -x "$ref_bin" ] || { echo "not executable: $ref_bin" >&2; exit 2; }
  bin_a=$ref_bin
  say "A = prebuilt $ref_bin"
else
  sha=$(git -C "$root" rev-parse --verify "$ref^{commit}") || { echo "unknown ref $ref" >&2; exit 2; }
  ref_target=${FK_GATE_REF_TARGET:-$root/target/gate-ref}
  bin_a=$ref_target/ferrokeeper-$sha
  if [ -x "$bin_a" ]; then
    say "A = $ref ($sha), cached $bin_a"
  else
    say "A = $ref ($sha): building in a temporary worktree, target dir $ref_target"
    t=$SECONDS
    ref_tree=$work/ref-src
    git -C "$root" worktree add --detach "$ref_tree" "$sha" >/dev/null 2>&1 || exit 2
    CARGO_TARGET_DIR=$ref_target cargo build --release -q --manifest-path "$ref_tree/Cargo.toml" \
      -p ferrokeeper-server || exit 2
    cp "$ref_target/release/ferrokeeper" "$bin_a"
    git -C "$root" worktree remove --force "$ref_tree" >/dev/null 2>&1 || true
    ref_tree=""
    say "reference built in $((SECONDS - t)) s"
  fi
fi

# ---- runs -------------------------------------------------------------------------------------
run_server() { # label round binary extra-cfg
  local name=$1 r=$2 bin=$3 cfg=$4 dir=$work/srv-$1-$2
  started+=("$dir")
  FK_IMPL=ferrokeeper FK_BIN="$bin" FK_CLUSTER_DIR="$dir" FK_CLIENT_PORT_BASE=$((port - 1)) \
    FK_EXTRA_CFG="$cfg" scripts/cluster-zk.sh start 1 >/dev/null || exit 2
  local wl line
  for wl in "${wls[@]}"; do
    "$fkload" run -w "loadgen/workloads/$wl.yaml" -t "127.0.0.1:$port" --duration "$duration" --warmup 1 \
      --no-progress --out "$out/$name-$r-$wl.json" >"$out/$name-$r-$wl.txt" 2>&1 || {
      cat "$out/$name-$r-$wl.txt" >&2
      exit 2
    }
    line=$(grep -E '^total ' "$out/$name-$r-$wl.txt" | head -1 || true)
    say "round $r $name $wl: ${line:-(see $out/$name-$r-$wl.txt)}"
  done
  FK_IMPL=ferrokeeper FK_CLUSTER_DIR="$dir" scripts/cluster-zk.sh stop 1 >/dev/null 2>&1 || true
  rm -rf "$dir"
}

for r in $(seq 1 "$rounds"); do
  if [ "$mode" = ref ]; then
    run_server A "$r" "$bin_a" "${FK_GATE_A_CFG:-}"
  fi
  run_server B "$r" "$bin_b" "${FK_GATE_B_CFG:-}"
done

if [ "$mode" = record ]; then
  mkdir -p "$record"
  python3 - "$out" "$record" "$rounds" "${wls[@]}" <<'PY'
import json, shutil, sys, os
out, record, rounds, wls = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
for wl in wls:
    runs = sorted(range(1, rounds + 1),
                  key=lambda r: json.load(open(f"{out}/B-{r}-{wl}.json"))["totals"]["throughput"])
    med = runs[len(runs) // 2]
    shutil.copy(f"{out}/B-{med}-{wl}.json", f"{record}/{wl}.json")
    print(f"baseline {wl}: round {med} (median ops/s of {rounds}) -> {record}/{wl}.json")
PY
  say "baseline recorded in $record"
  exit 0
fi

# ---- verdict ----------------------------------------------------------------------------------
echo
for wl in "${wls[@]}"; do
  for r in $(seq 1 "$rounds"); do
    a=$out/A-$r-$wl.json
    [ "$mode" = baseline ] && a=$baseline/$wl.json
    echo "== $wl, round $r: A = ${mode/ref/reference}, B = current tree (fkload compare, threshold $threshold%)"
    "$fkload" compare "$a" "$out/B-$r-$wl.json" --threshold "$threshold%" | tee "$out/compare-$r-$wl.txt" || true
    echo
  done
done
elapsed=$((SECONDS - t_start))
python3 - "$out" "$mode" "${baseline:-}" "$rounds" "$threshold" "$elapsed" "${wls[@]}" <<'PY'
import json, sys
out, mode, baseline, rounds, thr, elapsed, wls = (sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]),
                                                  float(sys.argv[5]), sys.argv[6], sys.argv[7:])
def load(p):
    r = json.load(open(p))
    ops = r["ops"]
    main = max(ops, key=lambda k: ops[k]["count"])
    return r["totals"]["throughput"], ops[main]["service"]["p99"], main
limit = 1 - thr / 100
lines = [f"| workload | round | A ops/s | B ops/s | B/A | A p99 ms | B p99 ms | |", "|---|---:|---:|---:|---:|---:|---:|---|"]
all_ratios = {}
failed, summary = [], {"mode": mode, "rounds": rounds, "threshold_pct": thr, "elapsed_secs": int(elapsed), "workloads": {}}
for wl in wls:
    ratios = []
    for r in range(1, rounds + 1):
        a = f"{baseline}/{wl}.json" if mode == "baseline" else f"{out}/A-{r}-{wl}.json"
        (ta, pa, main), (tb, pb, _) = load(a), load(f"{out}/B-{r}-{wl}.json")
        ratio = tb / ta if ta else 0.0
        ratios.append(ratio)
        lines.append(f"| {wl} | {r} | {ta:.0f} | {tb:.0f} | {ratio:.2f} | {pa:.2f} | {pb:.2f} | "
                     f"{'worse' if ratio < limit else 'ok'} |")
    all_ratios[wl] = ratios
    regressed = all(x < limit for x in ratios)
    summary["workloads"][wl] = {"ratios": [round(x, 3) for x in ratios], "regressed": regressed}
    if regressed:
        failed.append(wl)
print(f"## e2e gate summary (mode {mode}; {rounds} rounds; fail when B/A < {limit:.2f} in every round)")
print()
print("\n".join(lines))
print()
for wl in wls:
    s = summary["workloads"][wl]
    rs = ", ".join(f"{x:.2f}" for x in all_ratios[wl])
    print(f"{wl}: B/A ops/s per round {rs} -> {'REGRESSION (every round beyond the threshold)' if s['regressed'] else 'pass'}")
summary["verdict"] = "fail" if failed else "pass"
json.dump(summary, open(f"{out}/gate-summary.json", "w"), indent=1)
print()
print(f"VERDICT: {'FAIL: ' + ', '.join(failed) if failed else 'PASS'} ({elapsed} s in all; results in {out})")
sys.exit(1 if failed else 0)
PY
