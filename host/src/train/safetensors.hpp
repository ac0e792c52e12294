// safetensors: 8-byte little-endian header length, a JSON header mapping each
// tensor name to {dtype, shape, data_offsets}, then the raw bytes. Readable by
// Python (safetensors, transformers), Rust (candle) and C tools alike.
#pragma once

#include <cdrmix/config.hpp>

#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace cdrmix {

// Tensors by name, in the order they are written.
using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

void save_safetensors(const std::string &path, const NamedTensors &tensors,
                      const std::map<std::string, std::string> &metadata = {});
// Throws cdrmix::Error naming the file on a truncated or malformed file.
std::map<std::string, at::Tensor> load_safetensors(const std::string &path);

} // namespace cdrmix
