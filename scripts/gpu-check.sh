#!/usr/bin/env bash
# The GPU check of issue 15, for a machine with an NVIDIA GPU (one prepared,
# bounded run: about 8 minutes on one H100). Builds, runs the GPU tests that
# need no ../shared files, then benches random-weight models of the 1.1B and
# 8B Llama shapes (showdown synth) on the GPU at Q4_0, Q4_K_M, Q8_0 and F16,
# the 8B one only where the disk holds it, and an -ngl sweep on the 8B Q4_0
# with showdown plan's prediction beside it. Everything lands in $OUT (or
# build/gpu-check): summary.txt, bench-*.jsonl, the logs.
# Usage: scripts/gpu-check.sh [SECONDS_BUDGET]   (default 480)
set -uo pipefail
budget=${1:-480}
out=${OUT:-build/gpu-check}
mkdir -p "$out"
start=$(date +%s)
sum="$out/summary.txt"
say() { echo "== $*" | tee -a "$sum"; }
left() { echo $((budget - ($(date +%s) - start))); }
tmp=${TMPDIR:-/tmp}/gpu-check.$$
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT

say "machine: $(nproc) CPUs, $(free -g | awk '/Mem:/{print $2}') GiB, disk free $(df -BG --output=avail . | tail -1)"
nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version,clocks.max.memory --format=csv 2>&1 | tee -a "$sum"
vulkaninfo --summary >"$out/vulkaninfo.txt" 2>&1 || say "vulkaninfo: not installed or no driver"
command -v glslc >/dev/null || say "WARNING: no glslc here: the binary would carry no shaders"

say "build"
make -j"$(nproc)" build/showdown build/tests/run_tests >"$out/build.log" 2>&1 || { say "build FAILED"; tail -20 "$out/build.log" | tee -a "$sum"; exit 1; }
bin=build/showdown
$bin devices | tee -a "$sum"
if ! $bin devices | grep -q '^vulkan device 0'; then
  say "no Vulkan device: the NVIDIA driver ships a Vulkan ICD (nvidia_icd.json); without it there is nothing to measure"
  exit 1
fi

say "GPU tests (each format's product against the CPU; forward on synthesized qwen2/qwen3/llama3 models)"
SHOWDOWN_BIN=$bin timeout 120 build/tests/run_tests --filter 'gpu/@(product_*|forward_qwen*|forward_llama3*)' -j4 \
  >"$out/tests.log" 2>&1
tail -1 "$out/tests.log" | tee -a "$sum"

# One bench: model file, -ngl, label. pp256 and tg64, 2 repetitions.
bench() {
  local m=$1 ngl=$2 label=$3
  [ "$(left)" -gt 30 ] || { say "skipped $label: out of time"; return; }
  timeout $(( $(left) - 10 )) $bin bench -m "$m" -p 256 -n 64 -r 2 --warmup 1 -ngl "$ngl" -o jsonl \
    >>"$out/bench-$label.jsonl" 2>>"$out/bench.log" || say "bench $label -ngl $ngl FAILED (bench.log)"
  python3 - "$out/bench-$label.jsonl" "$ngl" <<'PY' | tee -a "$sum"
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if str(r.get("n_gpu_layers")) != "None":
        print(f'{r["model_type"]:>8} ngl {sys.argv[2]:>3} ({r["backends"]}, {r["n_gpu_layers"]} layers on {r["gpu_info"]}): '
              f'pp{r["n_prompt"]}/tg{r["n_gen"]} {r["avg_ts"]:.1f} tok/s, energy {r.get("energy_j")} J ({r["energy_source"]})'
              + (f' ERROR {r["error"]}' if r.get("error") else ''))
PY
  : >"$out/bench-$label.jsonl.done"
}

synth() {   # preset type file
  timeout $(( $(left) - 10 )) $bin synth --preset "$1" --type "$2" -o "$3" >>"$out/synth.log" 2>&1
}

for t in Q4_0 Q4_K_M Q8_0 F16; do
  f="$tmp/1b-$t.gguf"
  synth bench-1.1b "$t" "$f" && bench "$f" 99 "1.1b-$t"
  rm -f "$f"
done

for t in Q4_0 Q8_0 Q4_K_M F16; do
  f="$tmp/8b-$t.gguf"
  need=$($bin synth --preset llama-3.1-8b --type "$t" --dry-run 2>&1 | grep -o '[0-9.]* GB' | head -1 | cut -d' ' -f1)
  [ "$(left)" -gt 90 ] || { say "skipped 8B $t: out of time"; continue; }
  synth llama-3.1-8b "$t" "$f" || { say "synth 8B $t failed (disk? $need GB)"; rm -f "$f"; continue; }
  bench "$f" 99 "8b-$t"
  if [ "$t" = Q4_0 ]; then
    say "-ngl sweep, 8B Q4_0 (tg64 against layers on the GPU)"
    for n in 0 8 16 24 32 33; do bench "$f" "$n" "8b-sweep"; done
    $bin plan --model "$f" --hw this 2>&1 | head -40 >"$out/plan-8b-q4_0.txt" || true
  fi
  rm -f "$f"
done
say "done in $(( $(date +%s) - start )) s"
