#!/usr/bin/env bash
# Installs the Debian 12 packages CDRmix needs to build, test and run.
# Safe to run repeatedly: packages already present are skipped.
# Usage: scripts/install-deps.sh        (as root, or as a user with sudo)
set -euo pipefail

PACKAGES=(
  # toolchain
  g++ cmake pkg-config make ccache git
  # tensors and their BLAS (without OpenBLAS, LibTorch falls back to reference BLAS: ~25x slower GEMM)
  libtorch-dev libgloo-dev libopenblas0-openmp
  # scripting, config, CLI, logging
  libluajit-5.1-dev libyaml-cpp-dev nlohmann-json3-dev libcli11-dev libfmt-dev libvalijson-dev
  # tokenizers: sentencepiece BPE / unigram (training and encoding)
  libsentencepiece-dev
  # tests (python3: the shell tests check JSON and write fixtures with it)
  libgtest-dev libgmock-dev python3
  # fuzzing (scripts/fuzz.sh): clang with libFuzzer and the ASan/UBSan runtimes
  clang libclang-rt-14-dev
  # the GPU kernels compiled as HIP for AMD targets on every build (HIP 5.2; no AMD GPU needed)
  hipcc libamdhip64-dev
  # `cdrmix plot`: PNG files (libstb-dev below also gives it stb_easy_font's text)
  libpng-dev
  # dashboard (GUI) and headless display for its tests
  libimgui-dev libstb-dev libglfw3-dev libgl-dev xvfb xauth libgl1-mesa-dri
  # the default experiment's corpus: the fortune cookie databases (plain English text)
  fortunes fortunes-min
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} Debian packages present"
  exit 0
fi

echo "install-deps: installing ${#missing[@]} Debian packages: ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  echo "install-deps: error: need root to install packages; run as root or install sudo, or run:" >&2
  echo "  apt-get install -y ${missing[*]}" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
