#include "interop/import_model.hpp"

#include "model/model.hpp"
#include "train/checkpoint.hpp"

#include <cdrmix/error.hpp>
#include <cdrmix/rwkv7_lora.hpp>
#include <cdrmix/tokenizer.hpp>
#include <cdrmix/version.hpp>

#include <torch/torch.h>

#include <filesystem>
#include <regex>
#include <set>

namespace fs = std::filesystem;

namespace cdrmix {

namespace {

// RWKV-LM keeps v0/v1/v2 in layer 0, which makes v_first and never uses them.
bool unused_in_rwkv_lm(const std::string &name) {
    return name == "blocks.0.att.v0" || name == "blocks.0.att.v1" || name == "blocks.0.att.v2";
}

const at::Tensor &tensor_of(const SourceTensors &s, const std::string &name, int64_t dims) {
    auto it = s.tensors.find(name);
    if (it == s.tensors.end()) throw Error(s.where + ": missing tensor '" + source_name(s, name) + "'");
    if (it->second.dim() != dims || it->second.numel() == 0)
        throw Error(s.where + ": tensor '" + source_name(s, name) + "' has shape " + c10::str(it->second.sizes()) +
                    ", expected a non-empty tensor of " + std::to_string(dims) + " dimensions");
    return it->second;
}

// Layers present: every name blocks.N.* counts, and each of them must have its time-mix r_k,
// so a stray name cannot make the import build layers that hold nothing.
int64_t count_layers(const SourceTensors &s) {
    static const std::regex layered(R"(blocks\.(\d+)\..+)");
    int64_t layers = 0;
    std::smatch m;
    for (const auto &entry : s.tensors) {
        if (!std::regex_match(entry.first, m, layered)) continue;
        if (m[1].str().size() > 4) throw Error(s.where + ": tensor '" + entry.first + "' names an impossible layer");
        layers = std::max<int64_t>(layers, std::stoll(m[1].str()) + 1);
    }
    for (int64_t i = 0; i < layers; ++i) tensor_of(s, "blocks." + std::to_string(i) + ".att.r_k", 2);
    return layers;
}

// A vector stored flat (C) or as RWKV-LM's (1, 1, C) fits either form.
bool same_vector(at::IntArrayRef a, at::IntArrayRef b) {
    auto length = [](at::IntArrayRef s) -> int64_t {
        if (s.size() == 1) return s[0];
        if (s.size() == 3 && s[0] == 1 && s[1] == 1) return s[2];
        return -1;
    };
    return length(a) >= 0 && length(a) == length(b);
}

const std::vector<std::pair<std::string, at::ScalarType>> &checkpoint_dtypes() {
    static const std::vector<std::pair<std::string, at::ScalarType>> names = {
        {"float32", at::kFloat}, {"float64", at::kDouble}, {"bfloat16", at::kBFloat16}, {"float16", at::kHalf}};
    return names;
}

// ImportOptions::from_config has checked the name.
at::ScalarType dtype_named(const std::string &name) {
    for (const auto &[n, t] : checkpoint_dtypes())
        if (n == name) return t;
    throw Error("import: unknown dtype '" + name + "'");
}

std::string dtype_text(at::ScalarType t) {
    for (const auto &[n, type] : checkpoint_dtypes())
        if (type == t) return n;
    return c10::toString(t);
}

// The dtype the checkpoint gets: the one asked for, else the one every source tensor the model takes shares.
// (Tensors the source lacks are fill_model's to report.)
at::ScalarType checkpoint_dtype(const SourceTensors &s, Model &model, const std::string &asked) {
    std::set<at::ScalarType> seen;
    for (const auto &p : model.named_parameters()) {
        auto it = s.tensors.find(p.key());
        if (it == s.tensors.end()) continue;
        const at::Tensor &t = it->second;
        if (!at::isFloatingType(t.scalar_type()))
            throw Error(s.where + ": tensor '" + source_name(s, p.key()) + "' is " + dtype_text(t.scalar_type()) +
                        ", not floating point");
        seen.insert(t.scalar_type());
    }
    if (!asked.empty()) return dtype_named(asked);
    if (seen.size() != 1) {
        std::string list;
        for (auto t : seen) list += (list.empty() ? "" : ", ") + dtype_text(t);
        throw Error(s.where + ": tensors of several dtypes (" + list + "); choose one with --dtype");
    }
    return *seen.begin();
}

// The model is built before the weights are copied into it. Its large matrices must be in the source at
// their size first, so a small file cannot make the import allocate a huge model: what is built is then
// bounded by what was read.
void check_large_tensors(const SourceTensors &s, const Json &spec) {
    auto size = [&](const char *key) { return spec.at(key).get<int64_t>(); };
    const int64_t V = size("vocab_size"), C = size("hidden_size"), L = size("num_layers"), F = size("intermediate_size");
    auto expect = [&](const std::string &name, const std::vector<int64_t> &shape) {
        auto it = s.tensors.find(name);
        if (it == s.tensors.end())
            throw Error(s.where + ": missing tensor '" + source_name(s, name) + "' (the model expects shape " +
                        c10::str(at::IntArrayRef(shape)) + ")");
        if (it->second.sizes() != at::IntArrayRef(shape))
            throw Error(s.where + ": tensor '" + source_name(s, name) + "' has shape " +
                        c10::str(it->second.sizes()) + ", the model expects " + c10::str(at::IntArrayRef(shape)));
    };
    expect("head.weight", {V, C});
    for (int64_t i = 0; i < L; ++i) {
        const std::string b = "blocks." + std::to_string(i) + ".";
        for (const char *m : {"receptance", "key", "value", "output"}) expect(b + "att." + m + ".weight", {C, C});
        expect(b + "ffn.key.weight", {F, C});
        expect(b + "ffn.value.weight", {C, F});
    }
}

// Copies the source into every parameter and buffer; a missing or misshapen tensor names itself.
void fill_model(Model &model, const SourceTensors &s) {
    torch::NoGradGuard no_grad;
    auto fill = [&](const std::string &name, at::Tensor &dst) {
        auto it = s.tensors.find(name);
        if (it == s.tensors.end())
            throw Error(s.where + ": missing tensor '" + source_name(s, name) + "' (the model expects shape " +
                        c10::str(dst.sizes()) + ")");
        const at::Tensor &src = it->second;
        if (src.sizes() != dst.sizes() && !same_vector(src.sizes(), dst.sizes()))
            throw Error(s.where + ": tensor '" + source_name(s, name) + "' has shape " + c10::str(src.sizes()) +
                        ", the model expects " + c10::str(dst.sizes()));
        dst.copy_(src.reshape(dst.sizes()));
    };
    for (auto &p : model.named_parameters()) fill(p.key(), p.value());
    for (auto &b : model.named_buffers()) fill(b.key(), b.value());
}

// Source tensors the model has no place for; the documented unused ones go to `ignored`.
void check_all_used(const SourceTensors &s, Model &model, std::vector<std::string> &ignored) {
    std::set<std::string> used;
    for (const auto &p : model.named_parameters()) used.insert(p.key());
    for (const auto &b : model.named_buffers()) used.insert(b.key());
    std::vector<std::string> extra;
    for (const auto &entry : s.tensors) {
        if (used.count(entry.first)) continue;
        if (unused_in_rwkv_lm(entry.first)) ignored.push_back(source_name(s, entry.first));
        else extra.push_back(source_name(s, entry.first));
    }
    if (extra.empty()) return;
    std::string list;
    for (size_t i = 0; i < extra.size() && i < 8; ++i) list += (i ? ", " : "") + extra[i];
    if (extra.size() > 8) list += " and " + std::to_string(extra.size() - 8) + " more";
    throw Error(s.where + ": " + std::to_string(extra.size()) + " tensor(s) have no place in an RWKV-7 model: " + list);
}

std::shared_ptr<Tokenizer> import_tokenizer(const ImportOptions &o, int64_t vocab_size, std::string &file) {
    file = o.vocab;
    // Hugging Face RWKV-7 World folders ship RWKV-LM's vocabulary beside the weights; `cdrmix export`'s
    // folders ship CDRmix's own tokenizer.
    if (file.empty() && o.format == "hf")
        for (const char *name : {"rwkv_vocab_v20230424.txt", "cdrmix_tokenizer.json"})
            if (fs::is_regular_file(fs::path(o.source) / name)) {
                file = (fs::path(o.source) / name).string();
                break;
            }
    if (file.empty()) return make_id_tokenizer(vocab_size);
    std::shared_ptr<Tokenizer> tok = load_tokenizer_file(file);
    const Json j = tok->to_json();
    // The World vocabulary lists fewer ids than the model has (65530 of 65536): the rest decode to nothing.
    if (j.at("kind") == "world") return make_world_tokenizer(j.at("vocab").get<std::string>(), file, vocab_size);
    if (tok->vocab_size() > vocab_size)
        throw Error(file + ": " + std::to_string(tok->vocab_size()) + " tokens, more than the model's " +
                    std::to_string(vocab_size));
    return tok;
}

} // namespace

const Schema &ImportOptions::schema() {
    static const Schema s = [] {
        std::vector<std::string> dtypes;
        for (const auto &d : checkpoint_dtypes()) dtypes.push_back(d.first);
        Schema k("Import of a published RWKV-7 model as a checkpoint folder (`cdrmix import`, cdrmix.import{})");
        k.string("format", nullptr, "rwkv-lm: a .pth or .safetensors file; hf: a flash-linear-attention RWKV-7 folder")
            .required()
            .one_of({"rwkv-lm", "hf"});
        k.string("source", nullptr, "the file (rwkv-lm) or folder (hf)").required();
        k.string("out", nullptr, "the checkpoint folder to create (new or empty)").required();
        k.string("dtype", nullptr, "dtype of the checkpoint's weights (float32 widens bf16/fp16)")
            .one_of(dtypes)
            .default_is("the source's");
        k.string("vocab", nullptr, "tokenizer file: an RWKV World vocabulary .txt, a tokenizer .json or .model")
            .default_is("an hf folder's rwkv_vocab_v20230424.txt or cdrmix_tokenizer.json, else token ids only");
        return k;
    }();
    return s;
}

ImportOptions ImportOptions::from_config(const Config &config) {
    const Config c = schema().apply(config);
    return {c.get_string("format"), c.get_string("source"), c.get_string("out"), c.get_string("dtype", ""),
            c.get_string("vocab", "")};
}

Json rwkv7_spec_from_tensors(const SourceTensors &s, const std::string &name) {
    std::string absent;
    for (const char *needed : {"emb.weight", "blocks.0.att.r_k"})
        if (!s.tensors.count(needed)) absent += (absent.empty() ? "'" : ", '") + source_name(s, needed) + "'";
    if (!absent.empty())
        throw Error(s.where + ": not an RWKV-7 model: no " + absent +
                    (s.tensors.count("blocks.0.att.time_decay") ? " (time_decay: an RWKV-4/5/6 checkpoint)" : ""));
    const at::Tensor &emb = tensor_of(s, "emb.weight", 2);
    const int64_t V = emb.size(0), C = emb.size(1);
    const at::Tensor &r_k = tensor_of(s, "blocks.0.att.r_k", 2);
    if (r_k.size(0) * r_k.size(1) != C)
        throw Error(s.where + ": tensor '" + source_name(s, "blocks.0.att.r_k") + "' has shape " +
                    c10::str(r_k.sizes()) + ", heads x head size must be the hidden size " + std::to_string(C) +
                    " (emb.weight)");
    const int64_t L = count_layers(s);
    auto rank = [&](const std::string &tensor) { return tensor_of(s, tensor, 2).size(1); };
    // Layer 0 has no value residual; a one-layer model keeps the default rank, which nothing uses.
    const int64_t v_rank = L > 1 ? rank("blocks.1.att.v1") : rwkv7_lora_rank(1.7, C);
    return {{"name", name},
            {"vocab_size", V},
            {"hidden_size", C},
            {"num_layers", L},
            {"norm", "layernorm"},
            {"norm_eps", s.norm_eps},
            {"intermediate_size", tensor_of(s, "blocks.0.ffn.key.weight", 2).size(0)},
            {"mixer",
             {{"type", "rwkv7_time_mix"},
              {"head_size", r_k.size(1)},
              {"decay_lora", rank("blocks.0.att.w1")},
              {"a_lora", rank("blocks.0.att.a1")},
              {"v_lora", v_rank},
              {"gate_lora", rank("blocks.0.att.g1")}}},
            {"ffn", {{"type", "rwkv_channel_mix"}}}};
}

std::string import_model(const ImportOptions &o, const Registry &registry, std::string *report) {
    fs::path out = fs::absolute(o.out).lexically_normal();
    if (!out.has_filename()) out = out.parent_path(); // the model is named after the folder

    const SourceTensors source = o.format == "hf" ? read_hf_rwkv7(o.source) : read_rwkv_lm(o.source);
    const Json spec = rwkv7_spec_from_tensors(source, out.filename().string());
    check_large_tensors(source, spec);
    Model model(ModelSpec::from_json(spec, source.where), registry);
    const at::ScalarType dtype = checkpoint_dtype(source, model, o.dtype);
    model.to(dtype); // before the copy, so each value is converted once, straight from the source
    fill_model(model, source);
    std::vector<std::string> ignored;
    check_all_used(source, model, ignored);

    std::string vocab_file;
    const auto tokenizer = import_tokenizer(o, spec["vocab_size"].get<int64_t>(), vocab_file);
    const Json provenance = {{"format", o.format},
                             {"source", fs::absolute(o.source).string()},
                             {"dtype", dtype_text(dtype)},
                             {"vocab", vocab_file},
                             {"ignored", ignored},
                             {"cdrmix", kSdkVersion}};
    save_derived_checkpoint(out.string(), model, *tokenizer, provenance);
    if (report) {
        *report = "imported " + source.where + " into " + out.string() + ": " + spec["num_layers"].dump() +
                  " layers, hidden size " + spec["hidden_size"].dump() + ", vocabulary " + spec["vocab_size"].dump() +
                  ", " + std::to_string(model.num_parameters()) + " parameters, " + dtype_text(dtype) +
                  "; tokenizer: " + (vocab_file.empty() ? "token ids only (no --vocab given)" : vocab_file);
        if (!ignored.empty()) {
            *report += "; ignored (unused by RWKV-7's first layer):";
            for (const auto &n : ignored) *report += " " + n;
        }
    }
    return out.string();
}

} // namespace cdrmix
