#!/usr/bin/env bash
# showdown bench beside the reference engine's llama-bench on the same GGUF
# files: the two real models and our requantized variants of them
# (docs/BENCHMARKS.md, "Speed on the real models"). Never builds a peer:
# give the llama-bench binaries.
#
#   scripts/bench-real.sh [MODEL.gguf ...]
#
# Default models: $MODELS/smollm2-135m-instruct-q4_1.gguf and
# $MODELS/gemma-3-270m-q4_k_m.gguf, each with variants made by
# `showdown quantize --allow-requantize` into $OUT (SMOL_TYPES, GEMMA_TYPES;
# other models: TYPES). The reference engine is chosen by architecture:
# gemma3 files go to IK_BENCH (ik_llama.cpp: mainline c392e509 predates
# gemma3), the rest to LLAMA_BENCH. A file an engine cannot load gets a
# "cannot load" cell and the run goes on.
#
# Interleaved: each repetition runs every file once in each engine (-r 1,
# one warm-up), the engine order flipping from one repetition to the next,
# so a change in machine load lands on both engines. Prints (and writes to
# $OUT/bench-real.md) one markdown row per file and test: mean ± sd over the
# repetitions, the ratio, and the 1-minute load average seen over the run.
# Environment (defaults): SHOWDOWN=build/showdown MODELS=build/models
# LLAMA_BENCH=/work/peers/llama.cpp/build/bin/llama-bench
# IK_BENCH=/work/peers/ik_llama.cpp/build/bin/llama-bench
# PP=64,512 TG=32 THREADS=2 REPS=3 OUT=build/bench-real
# SMOL_TYPES="Q8_0 Q4_K_M Q4_0 Q3_K_M" GEMMA_TYPES="Q8_0 Q4_0 Q3_K_M" TYPES=""
# DRY=1: make the variants and print the plan, run nothing.
set -uo pipefail
sd=${SHOWDOWN:-build/showdown}
models=${MODELS:-build/models}
llama=${LLAMA_BENCH:-/work/peers/llama.cpp/build/bin/llama-bench}
ik=${IK_BENCH:-/work/peers/ik_llama.cpp/build/bin/llama-bench}
pp=${PP:-64,512} tg=${TG:-32} threads=${THREADS:-2} reps=${REPS:-3} out=${OUT:-build/bench-real}
smol_types=${SMOL_TYPES-Q8_0 Q4_K_M Q4_0 Q3_K_M} gemma_types=${GEMMA_TYPES-Q8_0 Q4_0 Q3_K_M} types=${TYPES-}
[ -x "$sd" ] || { echo "error: $sd: build showdown first (make)" >&2; exit 1; }
mkdir -p "$out" || exit 1
[ $# -gt 0 ] || set -- "$models/smollm2-135m-instruct-q4_1.gguf" "$models/gemma-3-270m-q4_k_m.gguf"

arch_of() { "$sd" info "$1" 2>/dev/null | awk '$1 == "architecture" { print $2 }'; }

# The files: each model, then its variants.
files=() engines=()
for m in "$@"; do
  [ -f "$m" ] || { echo "error: $m: no such file (make models?)" >&2; exit 1; }
  arch=$(arch_of "$m")
  [ -n "$arch" ] || { echo "error: $m: showdown info cannot read it" >&2; exit 1; }
  case $(basename "$m") in
    smollm2*) tl=$smol_types ;;
    gemma*) tl=$gemma_types ;;
    *) tl=$types ;;
  esac
  ref=$llama; [ "$arch" = gemma3 ] && ref=$ik
  files+=("$m"); engines+=("$ref")
  for t in $tl; do
    v=$out/$(basename "${m%.gguf}")-$t.gguf
    if [ ! -s "$v" ] || [ "$v" -ot "$m" ] || [ "$v" -ot "$sd" ]; then
      "$sd" quantize --allow-requantize -q "$m" "$v" "$t" > /dev/null || { echo "error: quantize $m $t failed" >&2; exit 1; }
    fi
    files+=("$v"); engines+=("$ref")
  done
done
for i in "${!files[@]}"; do
  [ -x "${engines[$i]}" ] || echo "note: ${engines[$i]}: no such binary; its rows will say so" >&2
  echo "plan: ${files[$i]}  reference: ${engines[$i]}" >&2
done
[ "${DRY:-0}" = 1 ] && exit 0

samples=$out/samples.tsv      # file engine test t/s
: > "$samples"
loads=$out/loads.txt
: > "$loads"
load1() { cut -d' ' -f1 /proc/loadavg; }

# avg_ts per test from either engine's CSV (columns found by name; quoted
# and bare fields both, as the two engines write them).
csv_rows() {
  awk -v file="$1" -v eng="$2" '
    function split_csv(line, f,   n, i, c, q, cur) {
      n = 0; cur = ""; q = 0
      for (i = 1; i <= length(line); i++) {
        c = substr(line, i, 1)
        if (c == "\"") q = !q
        else if (c == "," && !q) { f[++n] = cur; cur = "" }
        else cur = cur c
      }
      f[++n] = cur
      return n
    }
    NR == 1 { n = split_csv($0, h); for (i = 1; i <= n; i++) col[h[i]] = i; next }
    { split_csv($0, f); p = f[col["n_prompt"]]; g = f[col["n_gen"]]
      t = (g + 0 > 0) ? "tg" g : "pp" p
      print file "\t" eng "\t" t "\t" f[col["avg_ts"]] }'
}

run_one() {   # engine-name binary file
  local csv
  if [ "$1" = showdown ]; then
    csv=$("$sd" bench -q -m "$3" -p "$pp" -n "$tg" -t "$threads" -r 1 --warmup 1 -o csv 2>> "$out/errors.log")
  else
    [ -x "$2" ] || return 0
    csv=$("$2" -m "$3" -p "$pp" -n "$tg" -t "$threads" -r 1 -o csv 2>> "$out/errors.log")
  fi
  [ -n "$csv" ] && printf '%s\n' "$csv" | csv_rows "$(basename "$3")" "$1" >> "$samples"
}

t0=$(date +%s)
for ((r = 1; r <= reps; r++)); do
  for i in "${!files[@]}"; do
    load1 >> "$loads"
    if ((r % 2)); then run_one showdown "$sd" "${files[$i]}"; run_one reference "${engines[$i]}" "${files[$i]}"
    else run_one reference "${engines[$i]}" "${files[$i]}"; run_one showdown "$sd" "${files[$i]}"; fi
  done
  echo "repetition $r of $reps done ($(( $(date +%s) - t0 )) s)" >&2
done
load1 >> "$loads"

md=$out/bench-real.md
{
  echo "Run $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, $(( $(date +%s) - t0 )) s; showdown $(git rev-parse --short HEAD 2>/dev/null || echo unknown);"
  echo "1-minute load average over the run: $(sort -n "$loads" | head -1) to $(sort -n "$loads" | tail -1)."
  echo "pp$pp / tg$tg, $threads threads, $reps interleaved repetitions (mean ± sd)."
  echo
  echo "| file | reference engine | test | showdown t/s | reference t/s | showdown / reference |"
  echo "|---|---|---|---:|---:|---:|"
  for i in "${!files[@]}"; do
    f=$(basename "${files[$i]}")
    e=$(basename "$(dirname "$(dirname "$(dirname "${engines[$i]}")")")")
    for t in $(echo "$pp" | tr ',' ' '); do echo "pp$t"; done > "$out/tests.txt"
    for t in $(echo "$tg" | tr ',' ' '); do echo "tg$t"; done >> "$out/tests.txt"
    while read -r t; do
      awk -F'\t' -v f="$f" -v t="$t" -v e="$e" '
        function ms(k,   m, s, i) { if (!n[k]) return "cannot load"; m = sum[k] / n[k]; s = 0
          for (i = 1; i <= n[k]; i++) s += (v[k, i] - m) ^ 2
          sd_[k] = n[k] > 1 ? sqrt(s / (n[k] - 1)) : 0; mean[k] = m
          return sprintf("%.2f ± %.2f", m, sd_[k]) }
        $1 == f && $3 == t { k = $2; n[k]++; v[k, n[k]] = $4; sum[k] += $4 }
        END { a = ms("showdown"); b = ms("reference")
          r = (n["showdown"] && n["reference"] && mean["reference"] > 0) ? sprintf("%.2f", mean["showdown"] / mean["reference"]) : "-"
          printf "| %s | %s | %s | %s | %s | %s |\n", f, e, t, a, b, r }' "$samples"
    done < "$out/tests.txt"
  done
} > "$md"
cat "$md"
