#!/bin/sh
# SPDX-License-Identifier: MIT
# Instructions per FLOP of the packed GEMM's kernels on aarch64, counted under qemu-user (no plugin: Debian's qemu
# ships none). qemu logs each translated block's instructions (-d in_asm) and, with chaining off, every execution of
# a block (-d exec,nochain); the executed instructions are the sum over executions of their block's length. The
# driver (gemm_insn.cpp) runs the GEMM `reps` times; two runs (reps 1 and 3) differ by exactly two GEMMs.
#   usage: bench/cpu/count_gemm_insn.sh AARCH64_BUILD_DIR [M N K]     (default 48 256 512)
# AARCH64_BUILD_DIR: a cross build (tests/cross/run_aarch64.sh) whose library is built; the driver is linked from
# its kernel objects, so the counted code is the library's, compiled with its flags. Three rows:
#   generic       the portable kernel as the library builds it on aarch64 (+nosimd: scalar)
#   generic-simd  the same source built for the base architecture, NEON allowed, its NEON branch left out: the
#                 32-byte vector-extension kernel as GCC compiles it for NEON (what aarch64 ran before the NEON files)
#   neon          the NEON kernel (micro_kernel_impl.h's intrinsics)
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:?aarch64 build dir}" && pwd)
M=${2:-48}; N=${3:-256}; K=${4:-512}
objs=$build/CMakeFiles/pimoe.dir/backends/cpu
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cxx="aarch64-linux-gnu-g++ -std=c++17 -I$root -I$root/include -I$root/src -I$build/include"
rest="$objs/packed_gemm.cpp.o $objs/packed_gemm_neon.cpp.o $objs/cpu_isa.cpp.o $objs/weight_arena.cpp.o
      $build/CMakeFiles/pimoe.dir/src/error.cpp.o"
# shellcheck disable=SC2086
$cxx -O2 "$root/bench/cpu/gemm_insn.cpp" "$objs/packed_gemm_generic.cpp.o" $rest -o "$work/gemm_insn"
# shellcheck disable=SC2086
$cxx -O3 -DNDEBUG -fno-trapping-math -fno-math-errno -ffp-contract=fast -Wno-psabi -U__ARM_NEON \
  -c "$root/backends/cpu/packed_gemm_generic.cpp" -o "$work/generic_simd.o"
# shellcheck disable=SC2086
$cxx -O2 "$root/bench/cpu/gemm_insn.cpp" "$work/generic_simd.o" $rest -o "$work/gemm_insn_simd"

count() {  # binary reps -> executed instructions
  qemu-aarch64 -L /usr/aarch64-linux-gnu -d in_asm,exec,nochain -D "$work/log" "$1" "$M" "$N" "$K" "$2" >&2
  awk '/^IN:/ { inblk = 1; start = ""; n = 0; next }
       inblk && /^0x[0-9a-f]+:/ { if (start == "") start = substr($1, 3, length($1) - 3); n++; next }
       inblk && start != "" { len[start] = n; inblk = 0 }
       /^Trace/ { split($0, f, "/"); pc = f[2]; sub(/^0+/, "", pc); exec[pc]++ }
       END { for (pc in exec) total += exec[pc] * len[pc]; printf "%.0f\n", total }' "$work/log"
}

flops=$((2 * M * N * K))
for row in "generic gemm_insn generic" "generic-simd gemm_insn_simd generic" "neon gemm_insn neon"; do
  set -- $row
  one=$(PIMOE_CPU_ISA=$3 count "$work/$2" 1)
  three=$(PIMOE_CPU_ISA=$3 count "$work/$2" 3)
  per=$(( (three - one) / 2 ))
  echo "$1: $per instructions per GEMM of $M x $N x $K ($flops FLOP), $(awk -v d=$per -v f=$flops 'BEGIN { printf "%.3f", d / f }') per FLOP"
done
