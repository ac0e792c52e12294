#pragma once

namespace cdrmix {

// Version of the SDK (headers + libcdrmix); the plugin ABI has its own version in plugin_abi.h.
inline constexpr const char *kSdkVersion = "0.1.0";

} // namespace cdrmix
