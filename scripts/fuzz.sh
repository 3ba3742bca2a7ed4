#!/usr/bin/env bash
# Builds each fuzz/*.c as a libFuzzer target (with ASan and UBSan) and runs it
# for a bounded time. Crashes fail the run; the crashing input is kept in
# build/fuzz/. Usage: fuzz.sh SECONDS_PER_TARGET
set -euo pipefail
secs=${1:-20}
out=build/fuzz
mkdir -p "$out"
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
# The library once, instrumented for coverage and sanitizers; each target links
# it. The SIMD kernel files are left uninstrumented: no parser lives there (the
# test suite checks them, also under ASan/UBSan with gcc), and clang needs
# minutes per file to instrument their unrolled bodies.
make --no-print-directory -s BUILD="$out" CC=clang CFLAGS="-g -O1 -march=native -fsanitize=fuzzer-no-link $san" \
  KERNEL_CFLAGS="-fno-sanitize=all" "$out/libshowdown.a"
flags="-g -O1 -std=c11 -D_GNU_SOURCE -Iinclude -Isrc -fsanitize=fuzzer $san"
export SHOWDOWN_SHARED=${SHOWDOWN_SHARED:-../shared}
status=0
for f in fuzz/*.c; do
  [ -e "$f" ] || continue
  name=$(basename "$f" .c)
  echo "fuzz: building $name" >&2
  clang $flags "$f" "$out/libshowdown.a" -o "$out/$name" -lmicrohttpd -ljansson -lcurl -lm -lpthread -ldl
  corpus="$out/$name-corpus"
  mkdir -p "$corpus"
  seeds="fuzz/seeds/$name"
  echo "fuzz: running $name for ${secs}s" >&2
  if ! "$out/$name" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -artifact_prefix="$out/$name-" "$corpus" $( [ -d "$seeds" ] && echo "$seeds" ) >"$out/$name.log" 2>&1; then
    echo "fuzz: $name FAILED, see $out/$name.log" >&2
    tail -30 "$out/$name.log" >&2
    status=1
  else
    echo "fuzz: $name ok ($(grep -o 'Done [0-9]* runs' "$out/$name.log" | tail -1))" >&2
  fi
done
exit $status
