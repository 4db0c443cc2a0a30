#!/usr/bin/env bash
# Instruction-count regression gate (issue 8).
#
# Builds `benchgate` (release), runs every case under
#   valgrind --tool=callgrind --toggle-collect='*benchgate_measured*'
# (only instructions inside the measured workload are counted), compares each case's
# instruction count (Ir) with benches/baseline/instructions.json, prints a markdown table and
# exits 1 if any case rose by more than the threshold.
#
#   scripts/bench-gate.sh                 # the gate (CI)
#   scripts/bench-gate.sh --update        # rewrite the baseline: run this when a rise is intended
#   options: --threshold PCT (default 3, or $FK_BENCH_THRESHOLD)  --cases a,b,...
#            --baseline FILE  --bin PATH (skip the build; use this benchgate binary)
#
# Exit codes: 0 pass (or baseline updated), 1 a case rose beyond the threshold or has no
# baseline, 2 usage or setup error. FK_BENCH_SLOWDOWN=<case> is passed through to benchgate
# (a deliberate extra copy, to show the gate catches it).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
baseline="$root/benches/baseline/instructions.json"
threshold="${FK_BENCH_THRESHOLD:-3}"
update=0
bin=""
only=""

while [[ $# -gt 0 ]]; do
    case "$1" in
        --update) update=1 ;;
        --threshold) threshold="$2"; shift ;;
        --cases) only="$2"; shift ;;
        --baseline) baseline="$2"; shift ;;
        --bin) bin="$2"; shift ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) echo "bench-gate: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

if ! command -v valgrind >/dev/null 2>&1; then
    echo "bench-gate: valgrind missing; installing it" >&2
    if [[ $(id -u) -eq 0 ]]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq valgrind >&2 \
        || { echo "bench-gate: cannot install valgrind" >&2; exit 2; }
fi

if [[ -z "$bin" ]]; then
    cargo build --release --quiet -p ferrokeeper-benches --bin benchgate --manifest-path "$root/Cargo.toml"
    target_dir="${CARGO_TARGET_DIR:-$root/target}"
    bin="$target_dir/release/benchgate"
fi
[[ -x "$bin" ]] || { echo "bench-gate: no benchgate binary at $bin" >&2; exit 2; }

if [[ -n "$only" ]]; then
    cases="${only//,/ }"
else
    cases="$("$bin" list | cut -f1)"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Measures one case; prints its Ir.
measure() {
    local case="$1" out="$work/$1.callgrind"
    if ! valgrind --tool=callgrind --callgrind-out-file="$out" --toggle-collect='*benchgate_measured*' \
        "$bin" run "$case" >"$work/$case.log" 2>&1; then
        echo "bench-gate: case $case failed under valgrind:" >&2
        cat "$work/$case.log" >&2
        exit 2
    fi
    local ir
    ir="$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$out")"
    [[ -n "$ir" ]] || ir="$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$out")"
    [[ -n "$ir" ]] || { echo "bench-gate: no instruction total for $case" >&2; exit 2; }
    echo "$ir"
}

# Baseline entries as "case ir" lines (the file is written by this script, one case a line).
read_baseline() {
    [[ -f "$baseline" ]] || return 0
    sed -n 's/^ *"\([A-Za-z0-9_]*\)": *\([0-9][0-9]*\),\{0,1\} *$/\1 \2/p' "$baseline"
}

declare -A base=() current=()
while read -r name ir; do base[$name]="$ir"; done < <(read_baseline)

started=$SECONDS
for case in $cases; do
    current[$case]="$(measure "$case")"
done
elapsed=$((SECONDS - started))

operations() { "$bin" list | awk -F'\t' -v c="$1" '$1 == c { print $2 }'; }

if [[ $update -eq 1 ]]; then
    declare -A merged=()
    for name in "${!base[@]}"; do merged[$name]="${base[$name]}"; done
    for name in "${!current[@]}"; do merged[$name]="${current[$name]}"; done
    mkdir -p "$(dirname "$baseline")"
    {
        echo "{"
        echo "  \"about\": \"Instructions (callgrind Ir) inside benchgate_measured per case; written by scripts/bench-gate.sh --update\","
        echo "  \"rustc\": \"$(rustc --version 2>/dev/null || echo unknown)\","
        echo "  \"valgrind\": \"$(valgrind --version)\","
        echo "  \"cases\": {"
        names="$("$bin" list | cut -f1)"
        # Cases in benchgate's order, then any the binary no longer knows, sorted.
        ordered=()
        for name in $names; do [[ -n "${merged[$name]:-}" ]] && ordered+=("$name"); done
        for name in $(printf '%s\n' "${!merged[@]}" | sort); do
            [[ " ${ordered[*]} " == *" $name "* ]] || ordered+=("$name")
        done
        last=$(( ${#ordered[@]} - 1 ))
        for i in "${!ordered[@]}"; do
            sep=","; [[ $i -eq $last ]] && sep=""
            echo "    \"${ordered[$i]}\": ${merged[${ordered[$i]}]}$sep"
        done
        echo "  }"
        echo "}"
    } >"$baseline.tmp"
    mv "$baseline.tmp" "$baseline"
    echo "bench-gate: baseline updated: $baseline (${#current[@]} cases measured in ${elapsed}s)"
    for case in $cases; do echo "  $case ${current[$case]}"; done
    exit 0
fi

baseline_rustc="$(sed -n 's/^ *"rustc": *"\(.*\)",$/\1/p' "$baseline" 2>/dev/null || true)"
if [[ -n "$baseline_rustc" && "$baseline_rustc" != "$(rustc --version 2>/dev/null)" ]]; then
    echo "bench-gate: note: baseline was recorded with $baseline_rustc, now $(rustc --version)" >&2
fi

failed=()
echo "| case | ops | baseline Ir | current Ir | Ir/op | delta | |"
echo "|---|---:|---:|---:|---:|---:|---|"
for case in $cases; do
    now="${current[$case]}"
    ops="$(operations "$case")"
    per_op=$(( now / ${ops:-1} ))
    was="${base[$case]:-}"
    if [[ -z "$was" ]]; then
        echo "| $case | $ops | - | $now | $per_op | - | FAIL: no baseline (run --update) |"
        failed+=("$case")
        continue
    fi
    # Delta in hundredths of a percent, integer arithmetic; a zero baseline only matches zero.
    if [[ "$was" -eq 0 ]]; then
        if [[ "$now" -eq 0 ]]; then delta=0; else delta=1000000; fi
    else
        delta=$(( (now - was) * 10000 / was ))
    fi
    limit=$(awk -v t="$threshold" 'BEGIN { printf "%d", t * 100 }')
    sign=""; [[ $delta -ge 0 ]] && sign="+"
    shown="$(awk -v d="$delta" -v s="$sign" 'BEGIN { printf "%s%.2f %%", s, d / 100 }')"
    verdict="ok"
    if [[ $delta -gt $limit ]]; then
        verdict="FAIL: rose more than ${threshold} %"
        failed+=("$case")
    elif [[ $delta -lt -$limit ]]; then
        verdict="improved (refresh with --update)"
    fi
    echo "| $case | $ops | $was | $now | $per_op | $shown | $verdict |"
done
echo
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "bench-gate: FAILED (threshold ${threshold} %, ${elapsed}s): ${failed[*]}"
    echo "bench-gate: if the rise is intended, run scripts/bench-gate.sh --update and commit the baseline"
    exit 1
fi
echo "bench-gate: passed (threshold ${threshold} %, ${#current[@]} cases, ${elapsed}s)"
