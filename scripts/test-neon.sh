#!/usr/bin/env bash
# The ARM (aarch64 NEON) path, tested on an x86-64 Debian machine: installs a
# cross compiler and qemu-user, cross-builds the suite and the CLI into
# build/arm64, and runs them under emulation, end-to-end suites included.
#
#   scripts/test-neon.sh [criterion args...]      e.g. --filter 'kernels_neon/*'
#   SHARED=../shared  where the test models are (SHOWDOWN_SHARED)
#   NEON_JOBS=2       Criterion workers
#
# Why it is more than "apt-get install libcriterion-dev:arm64":
#  - Criterion's arm64 package cannot sit beside the amd64 one that the native
#    suite needs (bookworm's libnanomsg5 differs in binNMU version between the
#    two architectures, so apt removes one to install the other). We fetch the
#    three arm64 packages with `apt-get download` and unpack them into a
#    private sysroot (build/arm64/sysroot) instead; the rest of Criterion's
#    runtime (libgit2, libffi, glibc) installs cleanly as multiarch packages.
#  - Criterion runs every test in a child that re-executes the test binary
#    (BoxFort: execl of /proc/self/exe). Under qemu-user that exec needs the
#    kernel to know how to run aarch64 ELF files: binfmt_misc with qemu's
#    handler. We register it when missing (qemu-user-binfmt ships the line).
#  - The guest loader must be the multiarch one in /lib (QEMU_LD_PREFIX=/):
#    with -L /usr/aarch64-linux-gnu (the cross libc) pthread_create hangs
#    under qemu 7.2, and Criterion starts threads.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=build/arm64
SYSROOT=$PWD/$BUILD/sysroot
SHARED=${SHARED:-../shared}
JOBS=${NEON_JOBS:-2}
CROSS=aarch64-linux-gnu
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive

die() { echo "test-neon: $*" >&2; exit 1; }

# ---- 1. packages: cross compiler, emulator, arm64 runtime of Criterion ----
need=()
command -v $CROSS-gcc >/dev/null 2>&1 || need+=(gcc-$CROSS libc6-dev-arm64-cross)
command -v qemu-aarch64 >/dev/null 2>&1 || need+=(qemu-user)
[ -f /usr/lib/binfmt.d/qemu-aarch64.conf ] || need+=(qemu-user-binfmt)
[ -e /lib/ld-linux-aarch64.so.1 ] || need+=(libc6:arm64)
[ -e /usr/lib/aarch64-linux-gnu/libgit2.so.1.5 ] || need+=(libgit2-1.5:arm64)
[ -e /usr/lib/aarch64-linux-gnu/libffi.so.8 ] || need+=(libffi8:arm64)
if [ ${#need[@]} -gt 0 ]; then
    command -v apt-get >/dev/null 2>&1 || die "needs ${need[*]} (Debian/Ubuntu packages); install them or run on aarch64 with 'make test-fast'"
    echo "test-neon: installing ${need[*]}" >&2
    dpkg --print-foreign-architectures | grep -qx arm64 || $SUDO dpkg --add-architecture arm64
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

# ---- 2. Criterion for arm64, unpacked beside the build, not installed ----
if [ ! -e "$SYSROOT/usr/lib/aarch64-linux-gnu/libcriterion.so" ]; then
    debs=$PWD/$BUILD/debs
    rm -rf "$debs" "$SYSROOT"
    mkdir -p "$debs" "$SYSROOT"
    # apt-get download writes into the current directory
    (cd "$debs" && apt-get download -qq libcriterion3:arm64 libcriterion-dev:arm64 libnanomsg5:arm64 2>/dev/null) ||
        die "could not download Criterion's arm64 packages (is arm64 in dpkg --print-foreign-architectures and apt-get update done?)"
    for d in "$debs"/*.deb; do dpkg-deb -x "$d" "$SYSROOT"; done
fi

# ---- 3. let the kernel run aarch64 binaries through qemu (BoxFort re-execs) ----
BINFMT=/proc/sys/fs/binfmt_misc
if [ ! -e $BINFMT/qemu-aarch64 ]; then
    [ -e $BINFMT/register ] || $SUDO mount -t binfmt_misc binfmt_misc $BINFMT ||
        die "cannot mount binfmt_misc; Criterion's workers cannot start under qemu without it"
    $SUDO sh -c "cat /usr/lib/binfmt.d/qemu-aarch64.conf > $BINFMT/register" ||
        die "cannot register qemu-aarch64 with binfmt_misc"
fi
export QEMU_LD_PREFIX=/

# ---- 4. cross build (no -march=native: the NEON files carry their own flags) ----
LIBDIR=$SYSROOT/usr/lib/aarch64-linux-gnu
make --no-print-directory -j2 CC=$CROSS-gcc AR=$CROSS-ar BUILD=$BUILD \
    CFLAGS="-O3 -g -isystem $SYSROOT/usr/include" \
    LDFLAGS="-L$LIBDIR -Wl,--disable-new-dtags,-rpath,$LIBDIR" \
    $BUILD/tests/run_tests $BUILD/showdown

# ---- 5. run: the suite on the default (dotprod) CPU, then the NEON
# kernels and one end-to-end model on a core without dotprod ----
# Left out by default (pass your own --filter to run them): quantize* and ppl
# take minutes each under emulation and exercise no NEON code beyond what
# model_ref does; calibrate asserts real-hardware rates. The rest (all the
# model_ref/* and cli_ref/* end-to-end suites included) takes about 2 min.
DEFAULT_FILTER='!(quantize|quantize_vs_reference|ppl|calibrate)/*'
export SHOWDOWN_SHARED=$SHARED SHOWDOWN_BIN=$BUILD/showdown
start=$(date +%s)
if [ $# -gt 0 ]; then
    $BUILD/tests/run_tests -j"$JOBS" "$@"
else
    $BUILD/tests/run_tests -j"$JOBS" --filter "$DEFAULT_FILTER"
    echo "test-neon: again on a Cortex-A72 (no dotprod: the plain NEON kernels)" >&2
    QEMU_CPU=cortex-a72 $BUILD/tests/run_tests -j"$JOBS" --filter 'kernels*/*'
    QEMU_CPU=cortex-a72 $BUILD/tests/run_tests -j"$JOBS" --filter 'model_ref/*'
fi
echo "test-neon: done in $(( $(date +%s) - start )) s under qemu" >&2
