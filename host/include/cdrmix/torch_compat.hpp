// The few places where LibTorch 1.13 (Debian) and LibTorch 2.x differ, so the
// rest of the tree is written once. Include this instead of testing versions.
#pragma once

#include <torch/version.h>

// c10::Allocator::allocate lost its const in LibTorch 2.x, which also made
// copy_data a pure virtual every allocator must define.
#if TORCH_VERSION_MAJOR >= 2
#define CDRMIX_ALLOCATE_CONST
#define CDRMIX_ALLOCATOR_HAS_COPY_DATA 1
#else
#define CDRMIX_ALLOCATE_CONST const
#define CDRMIX_ALLOCATOR_HAS_COPY_DATA 0
#endif

// LibTorch 2.4 replaced autocast's per-device functions (set_cpu_enabled,
// set_autocast_gpu_dtype, ...) with ones taking the device type.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define CDRMIX_AUTOCAST_BY_DEVICE_TYPE 1
#else
#define CDRMIX_AUTOCAST_BY_DEVICE_TYPE 0
#endif
