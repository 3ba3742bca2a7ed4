#!/usr/bin/env bash
# The GPU check of issue 15, for a machine with an NVIDIA GPU: one prepared,
# bounded run (default budget 480 s, under the device tool's 10 minutes).
#   1. builds with -O3 (the Makefile's default flags: -O3 -march=native),
#   2. runs the GPU tests that need no ../shared files (every format's
#      product against the CPU, the forward pass on synthesized models),
#   3. benches random-weight models of the 1.1B and 8B Llama shapes
#      (showdown synth) with every layer on the GPU at Q4_0, Q8_0, Q4_K_M and
#      F16 (8B Q4_0 and Q8_0 first: the issue's goals), pp256 and tg64,
#      (the 8B Q4_0's pp again on the tiled kernel, SHOWDOWN_VK_COOPMAT=0,
#      against the cooperative-matrix one where the card has it),
#   4. an -ngl sweep (0 8 16 24 32 99, one load) on the 8B Q4_0 with
#      `showdown plan`'s prediction for each -ngl beside the measurement.
# No model larger than an 80 GB card fits the 64 GB disk, so the sweep shows
# speed against layers on the GPU rather than the wall itself.
# Rows are llama-bench-like, plus the decode speed as a fraction of the
# card's memory bandwidth (tg t/s x bytes read per token / bandwidth; bytes
# per token ~ the model's weight bytes). Everything lands in $OUT (or
# build/gpu-check): summary.md (what to paste into docs/BENCHMARKS.md),
# bench-*.jsonl, plan-*.csv, the logs.
#
# Usage: scripts/gpu-check.sh [SECONDS_BUDGET]
#   GPU_CHECK_TINY=1 scripts/gpu-check.sh   the same steps on the `tiny`
#   preset (a dry run on any Vulkan device, lavapipe included: no timing
#   means anything there).
set -uo pipefail
budget=${1:-480}
out=${OUT:-build/gpu-check}
tiny=${GPU_CHECK_TINY:-0}
mkdir -p "$out"
start=$(date +%s)
sum="$out/summary.md"
: >"$sum"
say() { echo "$*" | tee -a "$sum"; }
left() { echo $((budget - ($(date +%s) - start))); }
tmp=${TMPDIR:-/tmp}/gpu-check.$$
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT

say "# showdown GPU check ($(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'))"
say ""
say "machine: $(nproc) CPUs, $(free -g | awk '/Mem:/{print $2}') GiB RAM, disk free $(df -BG --output=avail . | tail -1 | tr -d ' ')"
gpu_name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
if nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version,clocks.max.memory --format=csv \
    >"$out/nvidia-smi.txt" 2>&1; then
  say "nvidia-smi: $(tail -1 "$out/nvidia-smi.txt")"
else
  say "nvidia-smi: not available"
fi
command -v vulkaninfo >/dev/null && vulkaninfo --summary >"$out/vulkaninfo.txt" 2>&1
command -v glslc >/dev/null || say "WARNING: no glslc here: the binary would carry no shaders"

# The card's memory bandwidth (GB/s, vendor datasheets) and the plan profile
# closest to it: the name as nvidia-smi prints it.
bw=0 hw=""
case "$gpu_name" in
  *H200*) bw=4800 hw=h200 ;;   # H200 SXM 4.8 TB/s; no row in data/hardware.tsv: derived below
  *"H100 PCIe"*) bw=2000 hw=h100-pcie ;;
  *"H100 NVL"*) bw=3900 hw=h100-nvl ;;
  *H100*) bw=3350 hw=h100-sxm ;;
  *A100*80GB*) bw=2039 hw=a100-80g ;;
  *"RTX 5090"*) bw=1792 hw=rtx-5090 ;;
  *"RTX 4090"*) bw=1008 hw=rtx-4090 ;;
esac
hwfile=data/hardware.tsv
if [ "$hw" = h200 ] || [ "$hw" = h100-nvl ]; then
  # The H100 SXM's row with the card's memory and bandwidth (same Hopper compute).
  hwfile="$tmp/hardware.tsv"
  cp data/hardware.tsv "$hwfile"
  mem=$([ "$hw" = h200 ] && echo 141 || echo 94)
  awk -F'\t' -v OFS='\t' -v id="$hw" -v bw="$bw" -v mem="$mem" \
    '$1=="h100-sxm"{$1=id; $2="derived from h100-sxm: " id; $5=mem; $6=mem-0.75; $7=bw; print}' data/hardware.tsv >>"$hwfile"
fi
# A dry run elsewhere may name them: GPU_CHECK_BW=GB/s GPU_CHECK_HW=id
bw=${GPU_CHECK_BW:-$bw} hw=${GPU_CHECK_HW:-$hw}
say "card: ${gpu_name:-none}; bandwidth ${bw} GB/s; plan profile ${hw:-none}"

# What the build needs (the device machine has no network to install it):
# the headers of the libraries showdown links, Criterion for the tests,
# glslc for the shaders, and the Vulkan loader with NVIDIA's ICD to run.
missing="" tests=1
for h in microhttpd.h jansson.h curl/curl.h vulkan/vulkan.h criterion/criterion.h; do
  echo "#include <$h>" | cc -E -x c - >/dev/null 2>&1 || missing="$missing $h"
done
case "$missing" in *criterion*) tests=0 ;; esac
command -v glslc >/dev/null || missing="$missing glslc"
ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1 ' || missing="$missing libvulkan.so.1"
ls /usr/share/vulkan/icd.d/nvidia_icd*.json /etc/vulkan/icd.d/nvidia_icd*.json >/dev/null 2>&1 \
  || [ "$tiny" = 1 ] || missing="$missing nvidia_icd.json"
[ -n "$missing" ] && say "missing here:$missing (scripts/install-build-deps.sh installs the build's; Debian: libvulkan-dev glslc)"
case "$missing" in *microhttpd*|*jansson*|*curl*|*vulkan.h*|*glslc*) say "cannot build without them"; exit 1 ;; esac

say ""
say "## build"
# -O3 -march=native named, whatever the environment's CFLAGS say
targets="build/showdown"; [ "$tests" = 1 ] && targets="$targets build/tests/run_tests"
# shellcheck disable=SC2086
make -j"$(nproc)" OPT="-O3 -march=native" CFLAGS="-O3 -march=native -g" $targets \
  >"$out/build.log" 2>&1 || { say "build FAILED"; tail -20 "$out/build.log" | tee -a "$sum"; exit 1; }
say "built with -O3 -march=native ($(cc --version | head -1))"
bin=build/showdown
$bin devices >"$out/devices.txt" 2>&1
sed 's/^/    /' "$out/devices.txt" | tee -a "$sum"
if ! grep -q '^vulkan device 0' "$out/devices.txt"; then
  say "no Vulkan device: the NVIDIA driver ships a Vulkan ICD (nvidia_icd.json); without it there is nothing to measure"
  exit 1
fi

say ""
say "## GPU tests"
if [ "$tests" = 1 ]; then
  SHOWDOWN_BIN=$bin timeout 150 build/tests/run_tests \
    --filter 'gpu/@(product_*|forward_qwen*|forward_llama3*|forward_prefill_tiled*)' -j4 >"$out/tests.log" 2>&1
  say "    $(grep -a 'Synthesis' "$out/tests.log" | tail -1)"
  grep -a -E '^\[(FAIL|----)\]' "$out/tests.log" | grep -v 'Criterion v' | head -20 | sed 's/^/    /' | tee -a "$sum"
  # Gemma 3 and the MoE layers (tests/test_gpu_arch.c; the real Gemma 3
  # 270M where SHOWDOWN_MODELS holds it).
  SHOWDOWN_BIN=$bin timeout 300 build/tests/run_tests --filter 'gpu_arch/*' -j4 >"$out/tests-arch.log" 2>&1
  say "    architectures: $(grep -a 'Synthesis' "$out/tests-arch.log" | tail -1)"
  grep -a -E '^\[FAIL\] gpu_arch' "$out/tests-arch.log" | head -8 | sed 's/^/    /' | tee -a "$sum"
  # The cooperative-matrix prefill kernel (its kernels need glslang 13+ at
  # build time: build where GLSLANG_VALIDATOR is set and carry build/).
  SHOWDOWN_BIN=$bin timeout 120 build/tests/run_tests --filter 'gpu_coopmat/*' -j4 --verbose >"$out/tests-coop.log" 2>&1
  say "    coopmat: $(grep -a 'Synthesis' "$out/tests-coop.log" | tail -1)"
  { grep -a -m1 '^\[SKIP\] gpu_coopmat' "$out/tests-coop.log" | grep -v 'Test is disabled'
    grep -a -E '^\[FAIL\] gpu_coopmat|worst relative' "$out/tests-coop.log" | head -8; } | sed 's/^/    /' | tee -a "$sum"
else
  say "    skipped: no Criterion headers here"
fi

# llama-bench-like rows from a bench jsonl, with tg's fraction of the bandwidth.
rows() {   # rows FILE
  awk -v bw="$bw" '
    function s(k,   m) { if (match($0, "\"" k "\": \"[^\"]*\"")) { m = substr($0, RSTART, RLENGTH); sub(/^[^:]*: "/, "", m); sub(/"$/, "", m); return m } return "" }
    function n(k,   m) { if (match($0, "\"" k "\": [-0-9.e+]+")) { m = substr($0, RSTART, RLENGTH); sub(/^[^:]*: /, "", m); return m + 0 } return -1 }
    {
      ts = n("avg_ts"); sd = n("stddev_ts"); size = n("model_size"); test = s("test"); err = s("error")
      frac = (bw > 0 && test ~ /^tg/ && ts > 0) ? sprintf("%.0f%%", 100 * ts * size / (bw * 1e9)) : "-"
      printf "| %s | %.2f GiB | %s | %s | %d | %s | %s | %s |\n", s("model_type"), size / 1073741824, s("backends"),
             s("gpu_info"), n("n_gpu_layers"), test, err != "" ? "ERROR " err : sprintf("%.2f ± %.2f", ts, sd), frac
    }' "$1" | tee -a "$sum"
}
header() {
  say ""
  say "| model | size | backend | device | ngl | test | t/s | tg of bandwidth |"
  say "| --- | ---: | --- | --- | ---: | --- | ---: | ---: |"
}

bench() {   # bench FILE NGL_LIST LABEL [bench args]
  local m=$1 ngl=$2 label=$3; shift 3
  [ "$(left)" -gt 20 ] || { say "skipped $label: out of time"; return 1; }
  timeout $(( $(left) - 10 )) $bin bench -m "$m" -ngl "$ngl" -o jsonl "$@" \
    >"$out/bench-$label.jsonl" 2>>"$out/bench.log" || say "bench $label (-ngl $ngl) failed or timed out (bench.log)"
  rows "$out/bench-$label.jsonl"
}

synth() {   # synth PRESET TYPE FILE: 0 when written in time
  [ "$(left)" -gt 40 ] || { say "skipped synth $1 $2: out of time"; return 1; }
  timeout $(( $(left) - 30 )) $bin synth --preset "$1" --type "$2" -o "$3" >>"$out/synth.log" 2>&1 \
    || { say "synth $1 $2 failed or timed out (synth.log; disk?)"; rm -f "$3"; return 1; }
}

small=bench-1.1b big=llama-3.1-8b pp=256 tg=64 reps=2
[ "$tiny" = 1 ] && small=tiny big=tiny pp=16 tg=8 reps=1

say ""
say "## $big, every layer on the GPU (pp$pp, tg$tg, $reps repetitions)"
header
for t in Q4_0 Q8_0 Q4_K_M F16; do
  f="$tmp/big-$t.gguf"
  synth "$big" "$t" "$f" || continue
  bench "$f" 99 "big-$t" -p "$pp" -n "$tg" -r "$reps" --warmup 1
  # prefill on the tiled kernel, for the cooperative-matrix one's gain
  [ "$t" = Q4_0 ] && SHOWDOWN_VK_COOPMAT=0 bench "$f" 99 "big-$t-tiled" -p "$pp" -n 0 -r "$reps" --warmup 1
  if [ "$t" = Q4_0 ]; then mv "$f" "$tmp/sweep.gguf"; else rm -f "$f"; fi
done

say ""
say "## $small, every layer on the GPU"
header
for t in Q4_0 Q8_0 Q4_K_M F16; do
  f="$tmp/small-$t.gguf"
  synth "$small" "$t" "$f" && bench "$f" 99 "small-$t" -p "$pp" -n "$tg" -r "$reps" --warmup 1
  rm -f "$f"
done

if [ -f "$tmp/sweep.gguf" ]; then
  say ""
  say "## -ngl sweep, $big Q4_0 (tg$tg; the CPU runs the other layers)"
  header
  bench "$tmp/sweep.gguf" 0,8,16,24,32,99 sweep -p 0 -n "$tg" -r 1 --warmup 1
  if [ -n "$hw" ]; then
    say ""
    say "plan's prediction (profile $hw; the CPU layers on its host profile), beside the measured tg:"
    say ""
    say "| ngl | plan tg t/s | measured tg t/s | measured / plan |"
    say "| ---: | ---: | ---: | ---: |"
    i=0
    for n in 0 8 16 24 32 99; do
      i=$((i + 1))
      p=$($bin plan --model "$tmp/sweep.gguf" --hw "$hw" --hw-file "$hwfile" --quant file -p 0 -n "$tg" -ngl "$n" -o csv \
          2>>"$out/plan.log" | tee -a "$out/plan-sweep.csv" | awk -F, 'NR==1{for(i=1;i<=NF;i++) if($i=="tg_ts") c=i} NR==2{print $c}')
      # bench writes one row per -ngl value, in the list's order
      m=$(sed -n "${i}p" "$out/bench-sweep.jsonl" | grep -o '"avg_ts": [0-9.e+-]*' | cut -d' ' -f2)
      say "$(awk -v n="$n" -v a="${m:-0}" -v b="${p:-0}" 'BEGIN{
        pb = b > 0 ? sprintf("%.1f", b) : "-"; ma = a > 0 ? sprintf("%.2f", a) : "-"
        r = (a > 0 && b > 0) ? sprintf("%.2f", a / b) : "-"
        printf "| %s | %s | %s | %s |", n, pb, ma, r }')"
    done
  else
    say "(no plan profile for this card: prediction skipped)"
  fi
fi
say ""
say "done in $(( $(date +%s) - start )) s (budget $budget s)"
