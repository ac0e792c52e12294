// A GGUF (version 3) file writer: the format llama.cpp and its tools load.
// Layout (gguf-py/gguf/constants.py, ggml/include/gguf.h): "GGUF", version,
// tensor count, key/value count; the key/value pairs (strings are a uint64
// length and the bytes; arrays an element type, a uint64 count and the
// elements); one info record per tensor (name, dimension count, dimensions
// innermost first, ggml type, offset into the data section); zero padding to
// the alignment; the tensors' bytes, each starting on an aligned offset.
//
// Dimensions are given in PyTorch order (outermost first) and written
// reversed, as ggml counts them (ne[0] is the contiguous one); the bytes are
// the tensor's own, row-major, so no data moves.
//
// Errors: cdrmix::Error naming the path when the file cannot be written, or
// naming the tensor when its dtype is neither float32 nor float16.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace cdrmix {

class GgufWriter {
public:
    static constexpr uint32_t kAlignment = 32; // llama.cpp's default (general.alignment when absent)

    void add_uint32(const std::string &key, uint32_t value);
    void add_float32(const std::string &key, float value);
    void add_string(const std::string &key, const std::string &value);
    void add_string_array(const std::string &key, const std::vector<std::string> &values);
    void add_int32_array(const std::string &key, const std::vector<int32_t> &values);
    // A float32 or float16 tensor; shape in PyTorch order, which may add or drop
    // size-1 dimensions of tensor (llama.cpp checks the shape it expects).
    void add_tensor(const std::string &name, const at::Tensor &tensor, const std::vector<int64_t> &shape);

    // Writes the file atomically (cdrmix/atomic_file.hpp).
    void write(const std::string &path) const;

private:
    struct TensorEntry {
        std::string name;
        at::Tensor data; // contiguous, on the CPU
        std::vector<int64_t> shape;
        uint32_t ggml_type;
    };
    std::string kv_;        // the encoded key/value pairs
    uint64_t kv_count_ = 0;
    std::vector<TensorEntry> tensors_;
};

} // namespace cdrmix
