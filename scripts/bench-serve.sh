#!/usr/bin/env bash
# showdown serve against llama-server under load, side by side on one machine
# (issue 13's benchmark; docs/BENCHMARKS.md records the results).
#
#   scripts/bench-serve.sh MODEL.gguf [LLAMA_SERVER_BINARY]
#
# Starts `showdown serve`, loads it with `showdown bench --url` (closed loop
# at each concurrency, streaming, ignore_eos so every request generates
# exactly OUTPUT_LEN tokens), stops it, then does the same with llama-server
# when its binary is given or found (LLAMA_SERVER, default
# /work/peers/llama.cpp/build/bin/llama-server). The script never builds
# llama-server. Then the prefix cache: TTFT with a shared PREFIX_LEN-token
# prefix against the same prompt length without one, on showdown.
# Environment (defaults): SHOWDOWN=build/showdown THREADS=2 SLOTS=4 CTX=8192
# CONC=1,2,4,8 NUM_PROMPTS=16 INPUT_LEN=128 OUTPUT_LEN=128 PREFIX_LEN=1000
# OUT=build/bench-serve PORT=18080 (llama-server's; showdown picks a free one).
set -euo pipefail
model=${1:?usage: scripts/bench-serve.sh MODEL.gguf [LLAMA_SERVER_BINARY]}
llama=${2:-${LLAMA_SERVER:-/work/peers/llama.cpp/build/bin/llama-server}}
sd=${SHOWDOWN:-build/showdown}
threads=${THREADS:-2} slots=${SLOTS:-4} ctx=${CTX:-8192} conc=${CONC:-1,2,4,8}
nump=${NUM_PROMPTS:-16} inlen=${INPUT_LEN:-128} outlen=${OUTPUT_LEN:-128} prefix=${PREFIX_LEN:-1000}
out=${OUT:-build/bench-serve} port=${PORT:-18080}
[ -f "$model" ] || { echo "error: $model: no such model file" >&2; exit 1; }
[ -x "$sd" ] || { echo "error: $sd: build showdown first (make)" >&2; exit 1; }
if ! "$sd" bench --help 2>/dev/null | grep -q -- "--url"; then
  echo "error: this showdown has no 'bench --url' (it lands with the benchurl branch)" >&2; exit 1
fi
mkdir -p "$out"
pid=
stop_server() { if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=; fi; }
trap stop_server EXIT INT TERM

# Waits for GET URL/health to answer 200 (60 s at most).
wait_health() {
  for _ in $(seq 600); do
    curl -sf -o /dev/null "$1/health" && return 0
    kill -0 "$pid" 2>/dev/null || { echo "error: the server exited, see its log in $out" >&2; exit 1; }
    sleep 0.1
  done
  echo "error: $1 not healthy after 60 s" >&2; exit 1
}

load() {   # load NAME URL [extra bench flags]: one sweep, a markdown table and an SVG
  local name=$1 url=$2; shift 2
  local cmd=("$sd" bench --url "$url/v1" --concurrency "$conc" --num-prompts "$nump" --input-len "$inlen"
             --output-len "$outlen" --ignore-eos -m "$model" --svg "$out/$name.svg" -o md "$@")
  echo "bench-serve: $name: ${cmd[*]}" >&2
  "${cmd[@]}" | tee "$out/$name.md"
}

# showdown serve on a free port: the URL comes from its ready line ("listening on";
# the loading line before it names the URL too, but /health answers 503 there).
"$sd" serve -m "$model" --port 0 -np "$slots" -c "$ctx" -t "$threads" 2> "$out/showdown-serve.log" &
pid=$!
url=
for _ in $(seq 600); do
  url=$(grep -o 'listening on http://[^ ]*' "$out/showdown-serve.log" | head -1 || true)
  url=${url#listening on }
  [ -n "$url" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$out/showdown-serve.log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { echo "error: showdown serve printed no URL" >&2; exit 1; }
wait_health "$url"
load showdown "$url"
# The prefix cache: a shared PREFIX_LEN-token prefix (reused after the first
# request) against prompts of the same total length without one.
CONC=1 conc=1 load showdown-prefix "$url" --prefix-len "$prefix" --input-len 32 --num-prompts 8
CONC=1 conc=1 load showdown-noprefix "$url" --input-len $((prefix + 32)) --num-prompts 8
stop_server

if [ -x "$llama" ]; then
  "$llama" -m "$model" --host 127.0.0.1 --port "$port" -np "$slots" -c "$ctx" -t "$threads" \
    > "$out/llama-server.log" 2>&1 &
  pid=$!
  wait_health "http://127.0.0.1:$port"
  load llama-server "http://127.0.0.1:$port"
  CONC=1 conc=1 load llama-server-prefix "http://127.0.0.1:$port" --prefix-len "$prefix" --input-len 32 --num-prompts 8
  CONC=1 conc=1 load llama-server-noprefix "http://127.0.0.1:$port" --input-len $((prefix + 32)) --num-prompts 8
  stop_server
else
  echo "bench-serve: no llama-server at $llama: showdown only" >&2
fi
echo "bench-serve: results in $out/ (*.md tables, *.svg latency against throughput)" >&2
