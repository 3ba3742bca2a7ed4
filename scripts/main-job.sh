#!/usr/bin/env bash
# The main job `make run` performs: generate text with the shared stories260K
# model (no download). Replaced by synth + calibrate + bench once they exist.
set -euo pipefail
bin=${1:-build/showdown}
shared=${SHOWDOWN_SHARED:-../shared}
model="$shared/models/stories260K.gguf"
if [ ! -f "$model" ]; then
  echo "error: $model not found (set SHOWDOWN_SHARED to the shared data folder)" >&2
  exit 1
fi
"$bin" run -m "$model" -p "Once upon a time" -n 40 --temp 0
