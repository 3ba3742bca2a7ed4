#!/usr/bin/env bash
# Installs what the tests need when it is missing: Criterion, clang with its
# libFuzzer runtime for the fuzzers, and Mesa's lavapipe (a CPU Vulkan
# driver, so the GPU kernels are tested where no GPU exists). Debian/Ubuntu via apt-get; elsewhere, says what to install.
set -euo pipefail
have_criterion() { [ -f /usr/include/criterion/criterion.h ] || [ -f /usr/local/include/criterion/criterion.h ]; }
have_clang() { command -v clang >/dev/null 2>&1; }
# libFuzzer's runtime is only "recommended" by Debian's clang: check it links.
have_libfuzzer() {
  echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return d && n; }' |
    clang -fsanitize=fuzzer -x c - -o /dev/null >/dev/null 2>&1
}
missing=()
have_criterion || missing+=(libcriterion-dev)
have_clang || missing+=(clang)
{ have_clang && have_libfuzzer; } || missing+=(libclang-rt-dev)
ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 || missing+=(mesa-vulkan-drivers)
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: the tests need ${missing[*]} (Criterion: https://github.com/Snaipe/Criterion; clang with libFuzzer); install them with your package manager" >&2
  exit 1
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing test dependencies: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
