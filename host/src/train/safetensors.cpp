#include "train/safetensors.hpp"

#include <cdrmix/atomic_file.hpp>

#include <cdrmix/error.hpp>

#include <torch/torch.h>

#include <cstdint>
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

void save_safetensors(const std::string &path, const std::vector<std::pair<std::string, at::Tensor>> &tensors,
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
    if (!header.is_object()) throw Error(path + ": malformed safetensors header: not a JSON object");
    const size_t base = 8 + n;
    std::map<std::string, at::Tensor> out;
    for (auto it = header.begin(); it != header.end(); ++it) {
        if (it.key() == "__metadata__") continue;
        const Json &e = it.value();
        std::vector<int64_t> shape;
        std::vector<uint64_t> offs;
        std::string dtype;
        try {
            shape = e.at("shape").get<std::vector<int64_t>>();
            offs = e.at("data_offsets").get<std::vector<uint64_t>>();
            dtype = e.at("dtype").get<std::string>();
        } catch (const Json::exception &) {
            throw Error(path + ": tensor '" + it.key() + "' lacks a well-formed dtype, shape or data_offsets");
        }
        at::ScalarType dt = dtype_from(dtype, path);
        if (offs.size() != 2 || offs[1] < offs[0] || offs[1] > blob.size() - base)
            throw Error(path + ": truncated or corrupt data for tensor '" + it.key() + "'");
        // The byte count the shape implies, checked against the data before anything is allocated.
        uint64_t bytes = c10::elementSize(dt);
        for (int64_t d : shape) {
            if (d < 0 || (d > 0 && bytes > UINT64_MAX / uint64_t(d)))
                throw Error(path + ": tensor '" + it.key() + "' has an impossible shape");
            bytes *= uint64_t(d);
        }
        if (bytes != offs[1] - offs[0]) throw Error(path + ": size mismatch for tensor '" + it.key() + "'");
        at::Tensor t = torch::empty(shape, torch::TensorOptions().dtype(dt));
        std::memcpy(t.data_ptr(), blob.data() + base + offs[0], offs[1] - offs[0]);
        out.emplace(it.key(), t);
    }
    return out;
}

} // namespace cdrmix
