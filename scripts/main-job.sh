#!/usr/bin/env bash
# The main job `make run` performs: real text from SmolLM2 when `make models`
# has fetched it (SHOWDOWN_MODELS, default build/models), then, with nothing
# downloaded: synthesize a small Llama-shaped model in three formats, measure
# this machine's ceilings, and benchmark the three, each row against its ceiling
# (named in the row: compute, dram, or cache+dram/cache where a decode step's
# bytes fit the caches in part or whole; "!" marks a row above its ceiling).
set -euo pipefail
bin=${1:-build/showdown}
tmp=$(mktemp -d /tmp/showdown-run.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

smollm=${SHOWDOWN_MODELS:-build/models}/smollm2-135m-instruct-q4_1.gguf
if [ -f "$smollm" ]; then
  prompt="Photosynthesis is the process by which"
  echo "== SmolLM2-135M-Instruct (Q4_1), greedy continuation of: $prompt" >&2
  printf '%s' "$prompt"
  "$bin" run -m "$smollm" -p "$prompt" -n 48 --temp 0
  echo
else
  echo "== the real model is not fetched ($smollm: run 'make models'); using the synthesized models only" >&2
fi

# ~88M parameters, small enough for seconds: F16 (~164 MB per token) and Q8_0
# (~87 MB) are mostly read from DRAM; Q4_0 (~48 MB) about fills a 48 MiB L3,
# so its decode ceiling is the cache's rather than DRAM's (the row names which).
shape=(--preset tiny --dim 768 --layers 12 --heads 12 --kv-heads 4 --ffn 2048 --vocab-size 8000)
models=()
for type in f16 q8_0 q4_0; do
  echo "== synthesizing a ${type} model (${shape[*]})" >&2
  "$bin" synth "${shape[@]}" --type "$type" -o "$tmp/small-$type.gguf" >&2
  models+=("$tmp/small-$type.gguf")
done

echo "== calibrating this machine (DRAM and cache read bandwidth, multiply-add ceilings)" >&2
export SHOWDOWN_PROFILE="$tmp/calibration.tsv"
"$bin" calibrate --seconds 4 >&2

echo "== benchmarking (prefill pp64, decode tg32, 3 repetitions after 2 warm-ups)" >&2
"$bin" bench -m "$(IFS=,; echo "${models[*]}")" -p 64 -n 32 -r 3 -o md
