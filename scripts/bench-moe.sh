#!/usr/bin/env bash
# Mixture-of-experts speed: showdown bench beside the reference fork's
# llama-bench (ik_llama.cpp, plain and with -rtr 1) on synthesized
# qwen3-30b-a3b files (all 128 experts, 8 of them per token, LAYERS layers),
# interleaved in ROUNDS rounds, with decode as a fraction of its ceiling:
#     ceiling = read bandwidth (showdown calibrate, THREADS threads)
#               / bytes one decode step reads (the k routed experts' share of
#               the expert tensors, attention, router, norms, output head,
#               one embedding row, and the KV cache at the mean context)
# (docs/BENCHMARKS.md, "Mixture of experts"). The script never builds the
# fork: give the path of its llama-bench (its llama-simple beside it is used
# for the sanity check).
#
#   IK_BENCH=/path/to/ik_llama.cpp/build/bin/llama-bench scripts/bench-moe.sh
#
# First, per file, a sanity check: both engines' greedy continuation of a
# short prompt (8 tokens) must be the same text, or the fork's MoE numbers
# are not trusted (it gives wrong results on some random files:
# ../shared/reference/README.md). Then per round and per file: showdown
# bench, llama-bench, llama-bench -rtr 1, one repetition each after their
# warm-up. Prints the table (means over the rounds) and writes the raw JSON
# under DIR. Also: showdown's load time with and without repacking.
# On a loaded machine set OMP_WAIT_POLICY=PASSIVE: the fork's OpenMP
# threads otherwise spin against the other processes (its decode fell to
# 0.5 t/s so); leave it unset on a quiet machine, as users run it.
# Environment (defaults): SHOWDOWN=build/showdown DIR=/tmp/showdown-moe
# LAYERS=8 TYPES="Q4_0 Q4_K_M MXFP4" ROUNDS=2 THREADS=2 PP=64,512 TG=64
set -uo pipefail
ik=${IK_BENCH:?set IK_BENCH to the llama-bench of the fork}
sd=${SHOWDOWN:-build/showdown}
dir=${DIR:-/tmp/showdown-moe}
layers=${LAYERS:-8} types=${TYPES:-Q4_0 Q4_K_M MXFP4} rounds=${ROUNDS:-2} threads=${THREADS:-2}
pp=${PP:-64,512} tg=${TG:-64}
[ -x "$sd" ] || { echo "error: $sd: build showdown first (make)" >&2; exit 1; }
[ -x "$ik" ] || { echo "error: $ik: no llama-bench binary there" >&2; exit 1; }
command -v jq > /dev/null || { echo "error: jq is needed to read the JSON results" >&2; exit 1; }
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)   # absolute: the fork's llama-simple runs there (it leaves a llama.log)
t_start=$(date +%s)
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
echo "# bench-moe $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, load $(loadavg)"
echo "showdown $(git rev-parse --short HEAD 2>/dev/null || echo unknown); fork: $ik; OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-unset}"

for ty in $types; do
  f=$dir/qwen3-30b-a3b-l$layers-$ty.gguf
  [ -f "$f" ] || "$sd" synth --preset qwen3-30b-a3b --layers "$layers" --type "$ty" -t "$threads" -o "$f" ||
    { echo "error: could not synthesize $f" >&2; exit 1; }
done

prof=$dir/calibration.tsv
"$sd" calibrate -q -t "$threads" --seconds 12 --profile "$prof" > /dev/null ||
  { echo "error: showdown calibrate failed" >&2; exit 1; }
bw=$(awk -F'\t' -v t="$threads" '$1 == "bw_gbps" && $2 == t { print $3 }' "$prof")
echo "read bandwidth, $threads threads: ${bw:-?} GB/s ($prof)"

# Mean t/s over the rounds of one engine's test (n_prompt, n_gen), "-" if none.
mean() {
  cat "$dir"/r*-"$1"-"$2".json 2> /dev/null |
    jq -rs --argjson p "$3" --argjson g "$4" \
      '[.[][] | select(.n_prompt == $p and .n_gen == $g) | .avg_ts] | if length > 0 then add / length else "-" end'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b }'; }
fmt() { awk -v a="$1" 'BEGIN { if (a == "-") print "-"; else printf "%.1f", a }'; }

# The sanity check: the same greedy text from both engines.
simple=$(cd "$(dirname "$ik")" && pwd)/llama-simple
prompt="Once upon a time"
for ty in $types; do
  f=$dir/qwen3-30b-a3b-l$layers-$ty.gguf
  ours=$("$sd" run -m "$f" -p "$prompt" -n 8 --temp 0 -t "$threads" 2> /dev/null)
  if [ -x "$simple" ]; then
    # llama-simple's -n counts the prompt's tokens (BOS included) too
    np=$("$sd" tokenize -m "$f" -p "$prompt" | wc -w)
    # it writes the prompt and the continuation on one line of its log
    theirs=$(cd "$dir" && "$simple" -m "$f" -p "$prompt" -n $((np + 8)) -t "$threads" 2>&1 | grep -F -m1 "$prompt")
    theirs=${theirs#*"$prompt"}
    [ "$ours" = "$theirs" ] && verdict="same greedy text" || verdict="DIFFERENT greedy text: fork numbers suspect"
  else
    verdict="not checked (no $simple)"
  fi
  echo "sanity $ty: $verdict"
  printf '%s\n' "$ours" > "$dir/sanity-$ty-showdown.txt"
  [ -x "$simple" ] && printf '%s\n' "$theirs" > "$dir/sanity-$ty-fork.txt"
done

# Start-up: load time (showdown bench's load_ms) with the repacking planned
# (the default; the first forward pass packs) and with none
# (SHOWDOWN_REPACK=0), interleaved.
echo
echo "Start-up, load ms (means of $rounds pairs, interleaved):"
echo "| experts | default | SHOWDOWN_REPACK=0 | default/none |"
echo "| --- | ---: | ---: | ---: |"
for ty in $types; do
  f=$dir/qwen3-30b-a3b-l$layers-$ty.gguf
  rm -f "$dir"/load-*.json
  for r in $(seq 1 "$rounds"); do
    "$sd" bench -q -m "$f" -p 1 -n 0 -t "$threads" -r 1 --warmup 0 -o json > "$dir/load-pack-$r.json" 2>> "$dir/errors.log"
    SHOWDOWN_REPACK=0 "$sd" bench -q -m "$f" -p 1 -n 0 -t "$threads" -r 1 --warmup 0 -o json \
      > "$dir/load-none-$r.json" 2>> "$dir/errors.log"
  done
  lp=$(cat "$dir"/load-pack-*.json | jq -s '[.[][] | .load_ms] | add / length')
  ln=$(cat "$dir"/load-none-*.json | jq -s '[.[][] | .load_ms] | add / length')
  echo "| $ty | $(fmt "$lp") | $(fmt "$ln") | $(ratio "$lp" "$ln") |"
done

rm -f "$dir"/r*-*.json
for r in $(seq 1 "$rounds"); do
  for ty in $types; do
    f=$dir/qwen3-30b-a3b-l$layers-$ty.gguf
    "$sd" bench -q -m "$f" -p "$pp" -n "$tg" -t "$threads" -r 1 --warmup 2 --profile "$prof" -o json \
      > "$dir/r$r-$ty-showdown.json" 2>> "$dir/errors.log" || echo "showdown failed on $f (round $r)" >&2
    "$ik" -m "$f" -p "$pp" -n "$tg" -t "$threads" -r 1 -o json \
      > "$dir/r$r-$ty-fork.json" 2>> "$dir/errors.log" || echo "llama-bench failed on $f (round $r)" >&2
    "$ik" -m "$f" -p "$pp" -n "$tg" -t "$threads" -r 1 -rtr 1 -o json \
      > "$dir/r$r-$ty-fork-rtr.json" 2>> "$dir/errors.log" || echo "llama-bench -rtr 1 failed on $f (round $r)" >&2
  done
done

echo
echo "Decode, tg$tg, $threads threads (means of $rounds rounds; fork: the faster of plain and -rtr 1):"
echo "| experts | MB/token | ceiling t/s | showdown t/s | of ceiling | fork t/s | showdown/fork |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
for ty in $types; do
  row=$(cat "$dir"/r*-"$ty"-showdown.json 2> /dev/null | jq -rs --argjson g "$tg" \
    '[.[][] | select(.n_prompt == 0 and .n_gen == $g)] | if length > 0 then
       [(map(.roofline_ts) | add / length), (.[0].roofline_note | capture("(?<mb>[0-9.]+) MB per token").mb)] | @tsv
     else "-\t-" end')
  ceil=$(cut -f1 <<< "$row") mb=$(cut -f2 <<< "$row")
  s=$(mean "$ty" showdown 0 "$tg") a=$(mean "$ty" fork 0 "$tg") b=$(mean "$ty" fork-rtr 0 "$tg")
  best=$(awk -v a="$a" -v b="$b" 'BEGIN { if (a == "-") print b; else if (b == "-" || a >= b) print a; else print b }')
  echo "| $ty | $mb | $(fmt "$ceil") | $(fmt "$s") | $(ratio "$s" "$ceil") | $(fmt "$best") | $(ratio "$s" "$best") |"
done
echo
echo "Prefill, $threads threads (means of $rounds rounds):"
echo "| experts | test | showdown t/s | fork t/s | fork -rtr 1 t/s | showdown/fork -rtr |"
echo "| --- | --- | ---: | ---: | ---: | ---: |"
for ty in $types; do
  for p in ${pp//,/ }; do
    s=$(mean "$ty" showdown "$p" 0) a=$(mean "$ty" fork "$p" 0) b=$(mean "$ty" fork-rtr "$p" 0)
    echo "| $ty | pp$p | $(fmt "$s") | $(fmt "$a") | $(fmt "$b") | $(ratio "$s" "$b") |"
  done
done
echo
echo "load after: $(loadavg); $(($(date +%s) - t_start)) s in all; raw JSON in $dir"
