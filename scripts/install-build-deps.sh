#!/usr/bin/env bash
# Installs what the build needs when it is missing: libmicrohttpd and jansson
# (the server), libcurl (bench --url), the Vulkan headers and glslc (the GPU
# backend; the loader itself is opened at run time, so running needs none of
# it). Debian/Ubuntu via apt-get; elsewhere, says what to install.
set -euo pipefail
have_hdr() { echo "#include <$1>" | ${CC:-cc} -E -x c - >/dev/null 2>&1; }
missing=()
have_hdr microhttpd.h || missing+=(libmicrohttpd-dev)
have_hdr jansson.h || missing+=(libjansson-dev)
have_hdr curl/curl.h || missing+=(libcurl4-openssl-dev)
have_hdr vulkan/vulkan.h || missing+=(libvulkan-dev)
command -v glslc >/dev/null 2>&1 || missing+=(glslc)
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: building showdown needs ${missing[*]} (libmicrohttpd, jansson, libcurl, Vulkan headers, glslc); install them with your package manager" >&2
  exit 1
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing build dependencies: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
