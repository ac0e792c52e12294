#include "interop/gguf_writer.hpp"

#include <cdrmix/atomic_file.hpp>
#include <cdrmix/error.hpp>

#include <torch/torch.h>

#include <cstring>

namespace cdrmix {

namespace {

// gguf_type (ggml/include/gguf.h) and ggml_type (ggml/include/ggml.h) codes.
enum GgufType : uint32_t { kInt32 = 5, kUint32 = 4, kFloat32 = 6, kString = 8, kArray = 9 };
enum GgmlType : uint32_t { kGgmlF32 = 0, kGgmlF16 = 1 };

template <class T> void put(std::string &out, T value) {
    char bytes[sizeof(T)];
    std::memcpy(bytes, &value, sizeof(T)); // GGUF is little-endian, as is every machine LibTorch runs on here
    out.append(bytes, sizeof(T));
}

void put_string(std::string &out, const std::string &s) {
    put<uint64_t>(out, s.size());
    out += s;
}

uint64_t aligned(uint64_t offset) {
    return (offset + GgufWriter::kAlignment - 1) / GgufWriter::kAlignment * GgufWriter::kAlignment;
}

} // namespace

void GgufWriter::add_uint32(const std::string &key, uint32_t value) {
    put_string(kv_, key);
    put<uint32_t>(kv_, kUint32);
    put<uint32_t>(kv_, value);
    ++kv_count_;
}

void GgufWriter::add_float32(const std::string &key, float value) {
    put_string(kv_, key);
    put<uint32_t>(kv_, kFloat32);
    put<float>(kv_, value);
    ++kv_count_;
}

void GgufWriter::add_string(const std::string &key, const std::string &value) {
    put_string(kv_, key);
    put<uint32_t>(kv_, kString);
    put_string(kv_, value);
    ++kv_count_;
}

void GgufWriter::add_string_array(const std::string &key, const std::vector<std::string> &values) {
    put_string(kv_, key);
    put<uint32_t>(kv_, kArray);
    put<uint32_t>(kv_, kString);
    put<uint64_t>(kv_, values.size());
    for (const auto &v : values) put_string(kv_, v);
    ++kv_count_;
}

void GgufWriter::add_int32_array(const std::string &key, const std::vector<int32_t> &values) {
    put_string(kv_, key);
    put<uint32_t>(kv_, kArray);
    put<uint32_t>(kv_, kInt32);
    put<uint64_t>(kv_, values.size());
    for (int32_t v : values) put<int32_t>(kv_, v);
    ++kv_count_;
}

void GgufWriter::add_tensor(const std::string &name, const at::Tensor &tensor, const std::vector<int64_t> &shape) {
    const at::ScalarType dtype = tensor.scalar_type();
    if (dtype != at::kFloat && dtype != at::kHalf)
        throw Error("gguf: tensor '" + name + "' is " + c10::toString(dtype) + "; only float32 and float16 are written");
    int64_t numel = 1;
    for (int64_t d : shape) numel *= d;
    TORCH_CHECK(numel == tensor.numel(), "gguf: tensor '", name, "' has ", tensor.numel(), " elements, shape ",
                c10::IntArrayRef(shape), " holds ", numel);
    tensors_.push_back({name, tensor.detach().cpu().contiguous(), shape, dtype == at::kFloat ? kGgmlF32 : kGgmlF16});
}

void GgufWriter::write(const std::string &path) const {
    std::string head = "GGUF";
    put<uint32_t>(head, 3);
    put<uint64_t>(head, tensors_.size());
    put<uint64_t>(head, kv_count_);
    head += kv_;
    uint64_t offset = 0;
    for (const auto &t : tensors_) {
        put_string(head, t.name);
        put<uint32_t>(head, static_cast<uint32_t>(t.shape.size()));
        for (auto d = t.shape.rbegin(); d != t.shape.rend(); ++d) put<uint64_t>(head, static_cast<uint64_t>(*d));
        put<uint32_t>(head, t.ggml_type);
        put<uint64_t>(head, offset);
        offset = aligned(offset + static_cast<uint64_t>(t.data.nbytes()));
    }
    head.append(aligned(head.size()) - head.size(), '\0');

    AtomicFileWriter out(path);
    out.write(head);
    for (const auto &t : tensors_) {
        const auto bytes = static_cast<uint64_t>(t.data.nbytes());
        out.write(static_cast<const char *>(t.data.data_ptr()), bytes);
        out.write(std::string(aligned(bytes) - bytes, '\0'));
    }
    out.commit();
}

} // namespace cdrmix
