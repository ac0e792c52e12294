#include "train/safetensors.hpp"

#include <cdrmix/atomic_file.hpp>

#include <cdrmix/error.hpp>

#include <torch/torch.h>

#include <climits>
#include <cstring>
#include <fstream>
#include <sstream>

namespace cdrmix {

namespace {

const std::vector<std::pair<at::ScalarType, std::string>> &dtype_names() {
    static const std::vector<std::pair<at::ScalarType, std::string>> names = {
        {at::kFloat, "F32"}, {at::kDouble, "F64"}, {at::kHalf, "F16"}, {at::kBFloat16, "BF16"},
        {at::kLong, "I64"},  {at::kInt, "I32"},    {at::kShort, "I16"}, {at::kChar, "I8"},
        {at::kByte, "U8"},   {at::kBool, "BOOL"}};
    return names;
}

std::string dtype_name(at::ScalarType t) {
    for (const auto &p : dtype_names())
        if (p.first == t) return p.second;
    throw Error(std::string("safetensors: unsupported dtype ") + c10::toString(t));
}

at::ScalarType dtype_from(const std::string &name, const std::string &path) {
    for (const auto &p : dtype_names())
        if (p.second == name) return p.first;
    throw Error(path + ": unsupported safetensors dtype '" + name + "'");
}

} // namespace

void save_safetensors(const std::string &path, const NamedTensors &tensors,
                      const std::map<std::string, std::string> &metadata) {
    Json header = Json::object();
    if (!metadata.empty()) header["__metadata__"] = metadata;
    std::vector<at::Tensor> data;
    int64_t offset = 0;
    for (const auto &[name, tensor] : tensors) {
        at::Tensor t = tensor.detach().cpu().contiguous();
        const int64_t bytes = t.numel() * static_cast<int64_t>(t.element_size());
        header[name] = {{"dtype", dtype_name(t.scalar_type())}, {"shape", t.sizes().vec()},
                        {"data_offsets", {offset, offset + bytes}}};
        offset += bytes;
        data.push_back(t);
    }
    std::string h = header.dump();
    h.append((8 - h.size() % 8) % 8, ' '); // align the data section to 8 bytes
    std::string blob(8, '\0');
    uint64_t n = h.size();
    for (int i = 0; i < 8; ++i) blob[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
    blob += h;
    blob.reserve(blob.size() + static_cast<size_t>(offset));
    for (const auto &t : data)
        blob.append(static_cast<const char *>(t.data_ptr()), t.numel() * t.element_size());
    write_file_atomic(path, blob);
}

namespace {

// A safetensors header entry's shape and data range, checked against the file
// before anything is allocated: every byte of the file is untrusted.
struct TensorSlot {
    std::vector<int64_t> shape;
    at::ScalarType dtype;
    uint64_t begin, end; // within the data section
};

TensorSlot tensor_slot(const std::string &path, const std::string &name, const Json &e, uint64_t data_size) {
    const std::string where = path + ": tensor '" + name + "'";
    if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") || !e.contains("data_offsets"))
        throw Error(where + ": a header entry needs dtype, shape and data_offsets");
    if (!e["dtype"].is_string()) throw Error(where + ": dtype is not a string");
    TensorSlot slot{{}, dtype_from(e["dtype"].get<std::string>(), path), 0, 0};
    const Json &shape = e["shape"], &offsets = e["data_offsets"];
    if (!shape.is_array()) throw Error(where + ": shape is not a list");
    uint64_t bytes = at::elementSize(slot.dtype);
    for (const auto &d : shape) {
        if (!d.is_number_unsigned()) throw Error(where + ": shape " + shape.dump() + " holds a negative or non-integer size");
        const uint64_t n = d.get<uint64_t>();
        if (n > uint64_t(INT64_MAX) || __builtin_mul_overflow(bytes, n, &bytes))
            throw Error(where + ": shape " + shape.dump() + " is larger than any file");
        slot.shape.push_back(int64_t(n));
    }
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned())
        throw Error(where + ": data_offsets must be two non-negative integers, got " + offsets.dump());
    slot.begin = offsets[0].get<uint64_t>();
    slot.end = offsets[1].get<uint64_t>();
    if (slot.begin > slot.end || slot.end > data_size)
        throw Error(where + ": data_offsets " + offsets.dump() + " lie outside the " + std::to_string(data_size) +
                    " bytes of data (truncated or corrupt file)");
    if (slot.end - slot.begin != bytes)
        throw Error(where + ": data_offsets hold " + std::to_string(slot.end - slot.begin) + " bytes, shape " +
                    shape.dump() + " of " + e["dtype"].get<std::string>() + " needs " + std::to_string(bytes));
    return slot;
}

} // namespace

std::map<std::string, at::Tensor> load_safetensors(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(path + ": cannot open");
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string blob = ss.str();
    if (blob.size() < 8) throw Error(path + ": truncated safetensors file (no header)");
    uint64_t n = 0;
    for (int i = 0; i < 8; ++i) n |= uint64_t(static_cast<unsigned char>(blob[static_cast<size_t>(i)])) << (8 * i);
    if (n > blob.size() - 8) throw Error(path + ": truncated safetensors file (header length " + std::to_string(n) + ")");
    Json header;
    try {
        header = Json::parse(blob.substr(8, n));
    } catch (const std::exception &e) {
        throw Error(path + ": malformed safetensors header: " + e.what());
    }
    if (!header.is_object()) throw Error(path + ": the safetensors header is not a JSON object");
    const size_t base = 8 + n;
    const uint64_t data_size = blob.size() - base;
    std::map<std::string, at::Tensor> out;
    for (auto it = header.begin(); it != header.end(); ++it) {
        if (it.key() == "__metadata__") continue;
        const TensorSlot slot = tensor_slot(path, it.key(), it.value(), data_size);
        at::Tensor t = torch::empty(slot.shape, torch::TensorOptions().dtype(slot.dtype));
        // An empty tensor has no storage: memcpy's pointers must not be null even for 0 bytes.
        if (slot.end > slot.begin) std::memcpy(t.data_ptr(), blob.data() + base + slot.begin, slot.end - slot.begin);
        out.emplace(it.key(), t);
    }
    return out;
}

} // namespace cdrmix
