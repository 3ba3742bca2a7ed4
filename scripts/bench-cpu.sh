#!/usr/bin/env bash
# `make bench`: decode and prefill speed of the 1.1B Llama shape in each weight
# format on this CPU, with the fraction of the measured ceilings.
#   scripts/bench-cpu.sh [path/to/showdown]
# Environment: TYPES (default "Q4_0 Q8_0 Q4_K Q2_K F16 BF16 NVFP4"), THREADS (2),
# REPS (3), DECODE (32 tokens), PP ("64,128,512"), DEPTHS ("0,512,2048,4096"),
# SHOWDOWN_ISA (generic|avx2|avx512: cap the kernels, for side-by-side runs),
# BENCH_KV (f16|q8_0|f32).
# The model is built in memory by scripts/bench_driver.c (a few really
# quantized rows tiled over each matrix), so nothing multi-GB touches the disk.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/showdown}
BUILD=$(dirname "$BIN")
make --no-print-directory "$BUILD/libshowdown.a" >/dev/null
DRIVER=$(mktemp /tmp/showdown-bench-driver.XXXXXX)
trap 'rm -f "$DRIVER"' EXIT
${CC:-cc} -O3 -march=native -std=c11 -D_GNU_SOURCE -Iinclude -Isrc -pthread \
  scripts/bench_driver.c "$BUILD/libshowdown.a" -o "$DRIVER" -lm -lpthread -ldl
THREADS=${THREADS:-2}
echo "# machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs;" \
     "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown); threads $THREADS"
echo "# load average: $(cut -d' ' -f1-3 /proc/loadavg) (a shared machine: compare runs side by side)"
TYPES=${TYPES:-Q4_0 Q8_0 Q4_K Q2_K F16 BF16 NVFP4}
echo "## kernels: one thread, best of 7, generic (traits table) vs this CPU's kernels"
for t in $TYPES; do "$DRIVER" --kernels "$t"; done
echo "## whole model: decode (tg) at context depths, prefill (pp), mean +- stdev over REPS"
for t in $TYPES; do
  "$DRIVER" "$t" -t "$THREADS" -r "${REPS:-3}" -n "${DECODE:-32}" -p "${PP:-64,128,512}" -d "${DEPTHS:-0,512,2048,4096}"
done
