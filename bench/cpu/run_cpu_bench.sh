#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The CPU benchmark of the issue "shape S at 256 tokens: >= 60% of same-run OpenBLAS sgemm, >= 3x PyTorch eager".
#
#   bench/cpu/run_cpu_bench.sh [BUILD_DIR]      (default BUILD_DIR: <repo>/build-bench, which must hold bench/bench_moe)
#
# For each OpenBLAS core to test (the environment's default; plus OPENBLAS_CORETYPE=SkylakeX when the CPU has AVX-512):
#   1. ../shared/tools/machine-probe (sgemm GFLOP/s and memory read bandwidth right now),
#   2. ROUNDS rounds (default 3) of, interleaved:  A = bench_moe on S-gelu@256 (libpimoe vs same-run sgemm),
#      B = torch_peer.py on S-gelu@256 as Debian's torch runs by default, B' = the same with OMP_WAIT_POLICY=passive
#      (torch's OpenMP pool otherwise spins against OpenBLAS's own threads on the same cores; see README.md),
#   3. machine-probe again,
# then prints the medians of:  libpimoe GFLOP/s / same-run sgemm GFLOP/s,  and  libpimoe tokens/s / torch tokens/s.
# Environment: THREADS (default nproc), ROUNDS (3), PYTHON (/usr/bin/python3, Debian's python3-torch),
#              FULL=1 to also run every shape and token count once (bench_moe and torch_peer) after the rounds.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=${1:-$repo/build-bench}
bench=$build/bench/bench_moe
probe=$repo/../shared/tools/machine-probe
threads=${THREADS:-$(nproc)}
rounds=${ROUNDS:-3}
python=${PYTHON:-/usr/bin/python3}
[ -x "$bench" ] || { echo "no $bench: build it first (cmake --build $build --target bench_moe)" >&2; exit 1; }
have_torch=1
"$python" -c 'import torch' 2>/dev/null || { have_torch=0; echo "no torch for $python: skipping the peer (apt-get install python3-torch)"; }

cores=(default)
if grep -qw avx512f /proc/cpuinfo; then cores+=(SkylakeX); else echo "CPU has no AVX-512: OPENBLAS_CORETYPE=SkylakeX not tried"; fi

# Waits (at most QUIET_WAIT seconds, default 180) until the machine's CPUs are < 10% busy over 2 s, so that a round
# starts on an idle machine; says so when it gives up. Every result line also reports "others": the mean number of
# cores other processes took while it was measured.
wait_quiet() {
  local max=${QUIET_WAIT:-180} start busy a b c d e f g h t1 i1 t2 i2
  start=$(date +%s)
  while :; do
    read -r _ a b c d e f g h _ </proc/stat; t1=$((a + b + c + d + e + f + g + h)); i1=$((d + e))
    sleep 2
    read -r _ a b c d e f g h _ </proc/stat; t2=$((a + b + c + d + e + f + g + h)); i2=$((d + e))
    busy=$((100 * ((t2 - t1) - (i2 - i1)) / (t2 - t1)))
    [ $busy -lt 10 ] && return 0
    if [ $(($(date +%s) - start)) -ge "$max" ]; then echo "(machine still ${busy}% busy after ${max}s; going on)"; return 0; fi
  done
}

out=$(mktemp -d "${TMPDIR:-/tmp}/pimoe-bench.XXXXXX")
echo "host $(hostname), $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), threads $threads, rounds $rounds"
echo "raw output in $out"

for core in "${cores[@]}"; do
  if [ "$core" = default ]; then
    envset=()
    label="default (OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset})"
  else
    envset=(OPENBLAS_CORETYPE=$core)
    label="OPENBLAS_CORETYPE=$core"
  fi
  log=$out/$core.log
  echo
  echo "=================== core: $label"
  wait_quiet
  { echo "## probe before"; env "${envset[@]}" "$probe" | grep -E 'core|RESULT'; } | tee -a "$log"
  for r in $(seq 1 "$rounds"); do
    wait_quiet
    echo "## round $r: libpimoe" >>"$log"
    env "${envset[@]}" "$bench" --shape S-gelu --tokens 256 --threads "$threads" --reps 3 \
      --json "$out/$core-lib-$r.json" 2>/dev/null | tee -a "$log" | grep -E '^RESULT|openblas core' | head -3
    if [ $have_torch = 1 ]; then
      echo "## round $r: torch default" >>"$log"
      env "${envset[@]}" "$python" "$here/torch_peer.py" --shape S-gelu --tokens 256 --threads "$threads" --reps 3 \
        | tee -a "$log" | grep -E '^RESULT'
      echo "## round $r: torch OMP_WAIT_POLICY=passive" >>"$log"
      env "${envset[@]}" OMP_WAIT_POLICY=passive "$python" "$here/torch_peer.py" --shape S-gelu --tokens 256 \
        --threads "$threads" --reps 3 | tee -a "$log" | grep -E '^RESULT'
    fi
  done
  { echo "## probe after"; env "${envset[@]}" "$probe" | grep -E 'RESULT'; } | tee -a "$log"

  "$python" - "$log" "$label" <<'EOF'
import re, statistics, sys
log, label = sys.argv[1], sys.argv[2]
lib, torch_d, torch_p, probes = [], [], [], []
for line in open(log):
    kv = dict(re.findall(r"(\w+)=(\S+)", line))
    if line.startswith("RESULT shape="):
        lib.append(kv)
    elif line.startswith("RESULT peer="):
        (torch_p if kv.get("omp_wait") == "passive" else torch_d).append(kv)
    elif line.startswith("RESULT sgemm") or line.startswith("RESULT memread"):
        probes.append(line.strip())
med = statistics.median
print(f"---- summary, core {label}, S-gelu@256 (medians over {len(lib)} interleaved rounds)")
if not lib:
    sys.exit("no libpimoe results")
print("probe before/after: " + " | ".join(p.replace("RESULT ", "") for p in probes))
ratio = [float(r["ratio_dense"]) for r in lib]
others = [float(r.get("others", "nan")) for r in lib + torch_d + torch_p]
print(f"others (cores taken by other processes during each measurement): max {max(others):.2f}, "
      f"median {med(others):.2f}{'  <- DISTURBED, rerun' if max(others) > 0.2 else ''}")
tps = [float(r["tokens_per_s"]) for r in lib]
print(f"libpimoe: {med(tps):.0f} tokens/s, {med(float(r['gflops']) for r in lib):.1f} GFLOP/s; same-run dense sgemm "
      f"{med(float(r['dense_gflops']) for r in lib):.1f} GFLOP/s; per-expert sgemm "
      f"{med(float(r['grouped_gflops']) for r in lib):.1f} GFLOP/s; core {lib[0]['core']}")
print(f"RATIO libpimoe/sgemm GFLOP/s = {med(ratio):.3f} (rounds: {', '.join(f'{x:.3f}' for x in ratio)})  target >= 0.60")
for name, peer in (("torch default", torch_d), ("torch OMP_WAIT_POLICY=passive", torch_p)):
    if not peer:
        continue
    pt = [float(r["tokens_per_s"]) for r in peer]
    per_round = [a / b for a, b in zip(tps, pt)]
    print(f"RATIO libpimoe/{name} tokens/s = {med(tps) / med(pt):.2f} (torch {med(pt):.0f} tokens/s, torch "
          f"{peer[0]['torch']}; per-round ratios {', '.join(f'{x:.2f}' for x in per_round)})  target >= 3")
EOF
done

if [ "${FULL:-0}" = 1 ]; then
  for core in "${cores[@]}"; do
    envset=(); [ "$core" = default ] || envset=(OPENBLAS_CORETYPE=$core)
    echo; echo "=================== all shapes, core $core"
    env "${envset[@]}" "$probe" | grep RESULT
    env "${envset[@]}" "$bench" --threads "$threads" --json "$out/$core-full.json" 2>/dev/null | grep -v '^RESULT'
    if [ $have_torch = 1 ]; then
      env "${envset[@]}" OMP_WAIT_POLICY=passive "$python" "$here/torch_peer.py" --threads "$threads" --reps 5 | grep -v '^RESULT'
    fi
    env "${envset[@]}" "$probe" | grep RESULT
  done
fi
