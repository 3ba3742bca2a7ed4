#!/usr/bin/env bash
# showdown bench beside the reference engine's llama-bench on the same GGUF
# files, one file after the other in one run (docs/BENCHMARKS.md, "Real
# models"). The script never builds llama-bench: give its path.
#
#   scripts/bench-real.sh LLAMA_BENCH MODEL.gguf [MODEL.gguf ...]
#
# Per file: `showdown bench` then `llama-bench` with the same tests (prompt
# sizes PP, generation TG, THREADS threads, REPS repetitions), each engine's
# markdown table appended to OUT/bench-real.md, with the load average before
# and after each run so a loaded machine shows. A file that an engine cannot
# load is reported in its place and the run goes on.
# Environment (defaults): SHOWDOWN=build/showdown PP=64,512 TG=32 THREADS=2
# REPS=5 OUT=build/bench-real
set -uo pipefail
llama=${1:?usage: scripts/bench-real.sh LLAMA_BENCH MODEL.gguf [MODEL.gguf ...]}
shift
[ $# -gt 0 ] || { echo "usage: scripts/bench-real.sh LLAMA_BENCH MODEL.gguf [MODEL.gguf ...]" >&2; exit 1; }
sd=${SHOWDOWN:-build/showdown}
pp=${PP:-64,512} tg=${TG:-32} threads=${THREADS:-2} reps=${REPS:-5} out=${OUT:-build/bench-real}
[ -x "$sd" ] || { echo "error: $sd: build showdown first (make)" >&2; exit 1; }
[ -x "$llama" ] || { echo "error: $llama: no llama-bench binary there" >&2; exit 1; }
mkdir -p "$out"
md=$out/bench-real.md
load() { cut -d' ' -f1-3 /proc/loadavg; }
{
  echo "# showdown bench vs llama-bench, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs"
  echo "showdown $(git rev-parse --short HEAD 2>/dev/null || echo unknown); llama-bench: $llama"
} > "$md"
for m in "$@"; do
  [ -f "$m" ] || { echo "error: $m: no such file" >&2; continue; }
  for engine in showdown llama-bench; do
    echo "## $(basename "$m"): $engine (load before: $(load))" >> "$md"
    if [ $engine = showdown ]; then
      "$sd" bench -q -m "$m" -p "$pp" -n "$tg" -t "$threads" -r "$reps" -o md >> "$md" 2>> "$out/errors.log" ||
        echo "(showdown could not run this file: see $out/errors.log)" >> "$md"
    else
      "$llama" -m "$m" -p "$pp" -n "$tg" -t "$threads" -r "$reps" -o md >> "$md" 2>> "$out/errors.log" ||
        echo "(llama-bench could not run this file: see $out/errors.log)" >> "$md"
    fi
    echo "(load after: $(load))" >> "$md"
    echo >> "$md"
  done
done
echo "written: $md"
