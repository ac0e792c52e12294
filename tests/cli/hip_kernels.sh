#!/usr/bin/env bash
# hip_kernels.sh "ARCH;ARCH" OBJECT...: the GPU kernels compiled as HIP by the
# build's hipcc check (plugins/backends/cuda/CMakeLists.txt) hold, for every
# AMD target asked for, a device code object with the WKV kernels in it; the
# host side holds the launchers cuda_ops.cpp calls. Skips (77) without hipcc.
set -euo pipefail
archs=$1
shift
if [[ $# -eq 0 ]]; then
  echo "SKIPPED: hipcc was not found when the build was configured (apt-get install hipcc libamdhip64-dev), so the kernels were not compiled as HIP"
  exit 77
fi
# Debian's hipcc drives clang-15; its LLVM tools read the offload bundles.
llvm=$(ls -d /usr/lib/llvm-*/bin 2>/dev/null | sort -V | tail -n 1)
for tool in llvm-objcopy llvm-readelf clang-offload-bundler llvm-nm; do
  [[ -x "$llvm/$tool" ]] || { echo "SKIPPED: $tool not found beside hipcc's clang"; exit 77; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for obj in "$@"; do
  name=$(basename "$obj" .o)
  "$llvm/llvm-objcopy" --dump-section=.hip_fatbin="$work/$name.fatbin" "$obj" "$work/$name.host.o" ||
    { echo "FAIL: $obj has no .hip_fatbin section"; exit 1; }
  bundles=$("$llvm/clang-offload-bundler" --list --type=o --input="$work/$name.fatbin")
  launchers=$("$llvm/llvm-nm" -C --defined-only "$obj" | grep -c " T cdrmix::gpu::wkv[67]_" || true)
  [[ $launchers -ge 2 ]] || { echo "FAIL: $obj defines $launchers wkv launchers"; exit 1; }
  for arch in ${archs//;/ }; do
    target="hipv4-amdgcn-amd-amdhsa--$arch"
    grep -qx "$target" <<<"$bundles" || { echo "FAIL: $obj has no code object for $arch (bundles: $bundles)"; exit 1; }
    "$llvm/clang-offload-bundler" --unbundle --type=o --input="$work/$name.fatbin" --targets="$target" \
      --output="$work/$name.$arch.co"
    kernels=$("$llvm/llvm-readelf" --symbols "$work/$name.$arch.co" | grep -c "\.kd$" || true)
    [[ $kernels -ge 2 ]] || { echo "FAIL: $obj's $arch code object has $kernels kernels"; exit 1; }
    echo "$name: $arch code object with $kernels kernels, $launchers host launchers"
  done
done
echo "ok: the GPU kernels compile as HIP for ${archs//;/, }"
