#include "metrics/tensorboard.hpp"

#include "core/files.hpp"
#include "metrics/record_fields.hpp"

#include <cdrmix/error.hpp>

#include <unistd.h>

#include <array>
#include <cmath>
#include <cstring>
#include <ctime>

// TFRecord and protocol buffers are little-endian; the encoders below copy native bytes.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "TensorBoard files: a big-endian host needs byte swaps here");

namespace cdrmix {

namespace {

// The protocol buffer wire format, for the fields an Event uses.
class Proto {
public:
    Proto &varint(int field, uint64_t v) {
        key(field, 0);
        put_varint(v);
        return *this;
    }
    Proto &f64(int field, double v) {
        key(field, 1);
        put_le(&v, 8);
        return *this;
    }
    Proto &f32(int field, float v) {
        key(field, 5);
        put_le(&v, 4);
        return *this;
    }
    Proto &bytes(int field, std::string_view v) {
        key(field, 2);
        put_varint(v.size());
        out_.append(v);
        return *this;
    }
    Proto &message(int field, const Proto &m) { return bytes(field, m.out_); }
    const std::string &str() const { return out_; }

private:
    void key(int field, int wire_type) { put_varint(uint64_t(field) << 3 | uint64_t(wire_type)); }
    void put_varint(uint64_t v) {
        for (; v >= 0x80; v >>= 7) out_.push_back(char((v & 0x7f) | 0x80));
        out_.push_back(char(v));
    }
    void put_le(const void *p, size_t n) { out_.append(static_cast<const char *>(p), n); }
    std::string out_;
};

// Event fields (event.proto) and Summary.Value fields (summary.proto).
enum EventField { kWallTime = 1, kStep = 2, kFileVersion = 3, kSummary = 5 };
enum ValueField { kTag = 1, kSimpleValue = 2, kTensor = 8, kMetadata = 9 };

Proto event(double wall_time, int64_t step) {
    Proto e;
    e.f64(kWallTime, wall_time);
    e.varint(kStep, uint64_t(step));
    return e;
}

Proto scalar(const std::string &tag, double v) {
    Proto value;
    value.bytes(kTag, tag).f32(kSimpleValue, float(v));
    return value;
}

// A text summary: a DT_STRING scalar tensor under the "text" plugin.
Proto text(const std::string &tag, const std::string &s) {
    Proto plugin, metadata, shape, tensor, value;
    plugin.bytes(1, "text");        // PluginData.plugin_name
    metadata.message(1, plugin);    // SummaryMetadata.plugin_data
    tensor.varint(1, 7);            // TensorProto.dtype = DT_STRING
    tensor.message(2, shape);       // tensor_shape: a scalar
    tensor.bytes(8, s);             // string_val
    value.bytes(kTag, tag).message(kMetadata, metadata).message(kTensor, tensor);
    return value;
}

std::string host_name() {
    char name[256] = {};
    if (gethostname(name, sizeof name - 1) != 0 || !name[0]) return "localhost";
    return name;
}

bool number_at(const Json &r, const char *key, double &out) {
    auto it = r.find(key);
    if (it == r.end() || !it->is_number()) return false;
    out = it->get<double>();
    return std::isfinite(out);
}

} // namespace

uint32_t masked_crc32c(std::string_view bytes) {
    const uint32_t c = crc32c(bytes);
    return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

std::string tfrecord(std::string_view data) {
    const uint64_t length = data.size();
    char header[8];
    std::memcpy(header, &length, 8); // little-endian, as TFRecord specifies
    const uint32_t length_crc = masked_crc32c(std::string_view(header, 8)), data_crc = masked_crc32c(data);
    std::string out(header, 8);
    out.append(reinterpret_cast<const char *>(&length_crc), 4);
    out.append(data);
    out.append(reinterpret_cast<const char *>(&data_crc), 4);
    return out;
}

TensorBoardSink::TensorBoardSink(const std::string &folder) {
    const std::time_t now = std::time(nullptr);
    path_ = folder + "/events.out.tfevents." + std::to_string(now) + "." + host_name() + ".cdrmix";
    out_.open(path_, std::ios::binary | std::ios::app);
    if (!out_) throw Error(path_ + ": cannot open for writing");
    Proto first = event(double(now), 0);
    first.bytes(kFileVersion, "brain.Event:2");
    append(first.str());
}

void TensorBoardSink::append(const std::string &event) {
    out_ << tfrecord(event);
    out_.flush();
    if (!out_) throw MetricsWriteError(path_ + ": cannot write the TensorBoard events (disk full?)");
}

void TensorBoardSink::write(const Json &r) {
    namespace f = fields::step;
    const std::string kind = r.value(fields::event, "");
    double step = 0, wall = 0;
    if (!number_at(r, f::step, step)) return;
    if (!number_at(r, fields::time, wall)) wall = double(std::time(nullptr));
    Proto summary;
    auto add = [&](const std::string &tag, const Json &rec, const char *key) {
        double v = 0;
        if (number_at(rec, key, v)) summary.message(1, scalar(tag, v));
    };
    if (kind == fields::events::step) {
        add("train/loss", r, f::loss);
        add("train/aux_loss", r, f::aux_loss);
        add("train/lr", r, f::lr);
        add("train/grad_norm", r, f::grad_norm);
        add("train/tokens_per_s", r, f::tokens_per_s);
        if (auto moe = r.find(f::moe); moe != r.end() && moe->is_array())
            for (const auto &layer : *moe) {
                if (!layer.is_object()) continue;
                const std::string at = "moe/layer" + std::to_string(layer.value(fields::moe::layer, int64_t(0))) + "/";
                for (const char *key : {fields::moe::load_cv, fields::moe::token_entropy, fields::moe::load_entropy,
                                        fields::moe::dropped_tokens, fields::moe::dead_experts})
                    add(at + key, layer, key);
                if (auto losses = layer.find(fields::moe::losses); losses != layer.end() && losses->is_object())
                    for (const auto &[name, v] : losses->items())
                        if (v.is_number() && std::isfinite(v.get<double>()))
                            summary.message(1, scalar(at + name, v.get<double>()));
            }
    } else if (kind == fields::events::eval) {
        add("val/loss", r, fields::eval::val_loss);
        add("val/perplexity", r, fields::eval::val_ppl);
    } else if (kind == fields::events::sample && r.contains("text") && r["text"].is_string()) {
        summary.message(1, text("samples", r["text"].get<std::string>()));
    }
    if (summary.str().empty()) return;
    Proto e = event(wall, int64_t(step));
    e.message(kSummary, summary);
    append(e.str());
}

} // namespace cdrmix
