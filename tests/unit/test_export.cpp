// `cdrmix export`: the Hugging Face folder (fla's RWKV-7 names and shapes, the
// model card), the GGUF file (read back by a parser written here from the
// format's description, checked against the names and ggml shapes llama.cpp's
// rwkv7 loader asks for), float16, refusals, and the checkpoint's run config
// under its new name. tests/cli/export_check.sh reads the same files with
// independent npm readers and llama.cpp itself.
#include "interop/export_gguf.hpp"
#include "interop/export_hf.hpp"
#include "interop/import_model.hpp"
#include "test_util.hpp"
#include "train/checkpoint.hpp"
#include "train/safetensors.hpp"
#include "train/trainer.hpp"

#include <cdrmix/atomic_file.hpp>

#include <cstring>
#include <fstream>
#include <sstream>

namespace {

namespace fs = std::filesystem;
using cdrmix::Json;
using torch::Tensor;

// llama.cpp computes head sizes 64 and 128 only: a width-64 model of one head, two layers, a byte vocabulary.
constexpr int64_t kV = 256, kC = 64, kN = 64, kH = kC / kN, kF = 2 * kC;

Json export_spec() {
    Json spec = cdrmix::test::tiny_model_spec(kV);
    spec["hidden_size"] = kC;
    spec["mixer"]["head_size"] = kN;
    return spec;
}

// A checkpoint of a randomly perturbed model under <dir>/run/checkpoints, with a run config and metrics.
std::string make_checkpoint(const fs::path &dir, const Json &spec,
                            std::shared_ptr<cdrmix::Tokenizer> tok = cdrmix::make_byte_tokenizer()) {
    cdrmix::Model model(cdrmix::ModelSpec::from_json(spec, "test"), cdrmix::Registry::global());
    cdrmix::test::perturb(model, 0.1, 5);
    auto opt = cdrmix::make_adamw(model, 1e-3, 0.1, 0.9, 0.99, 1e-8);
    const fs::path run = dir / "run";
    fs::create_directories(run);
    cdrmix::write_file_atomic((run / "metrics.jsonl").string(),
                              "{\"event\":\"step\",\"step\":6,\"loss\":2.5}\n{\"event\":\"step\",\"step\":7,\"loss\":2.1}\n"
                              "{\"event\":\"eval\",\"step\":7,\"val_loss\":2.3}\n{\"event\":\"step\",\"step\":8,\"loss\":9}\n");
    const Json run_config = {{"script", "experiments/x.lua"},
                             {"overrides", {"train.steps=7"}},
                             {"data", {{"type", "text"}, {"path", "corpus.txt"}}}};
    return cdrmix::save_checkpoint((run / "checkpoints").string(), 7, model, *opt, *tok, Json{{"step", 7}},
                                   run_config);
}

std::string read_file(const fs::path &p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// ---- a GGUF reader, from the format's description (gguf-py/gguf/constants.py, ggml/include/gguf.h) ----
struct GgufTensor {
    std::vector<uint64_t> ne; // ggml order: ne[0] innermost
    uint32_t type = 0;
    uint64_t offset = 0;
};
struct GgufFile {
    uint32_t version = 0;
    std::map<std::string, Json> kv; // numbers, strings and arrays of them
    std::map<std::string, uint32_t> kv_type;
    std::map<std::string, GgufTensor> tensors;
    std::vector<std::string> order;
    uint64_t data_start = 0;
    std::string bytes;
    Tensor f32(const std::string &name) const {
        const GgufTensor &t = tensors.at(name);
        int64_t n = 1;
        for (uint64_t d : t.ne) n *= int64_t(d);
        const at::ScalarType st = t.type == 0 ? at::kFloat : at::kHalf;
        Tensor out = torch::empty({n}, st);
        std::memcpy(out.data_ptr(), bytes.data() + data_start + t.offset, size_t(out.nbytes()));
        return out.to(at::kFloat);
    }
};

struct Cursor {
    const std::string &b;
    size_t at = 0;
    template <class T> T get() {
        if (at + sizeof(T) > b.size()) throw std::runtime_error("gguf: truncated");
        T v;
        std::memcpy(&v, b.data() + at, sizeof(T));
        at += sizeof(T);
        return v;
    }
    std::string str() {
        const auto n = get<uint64_t>();
        std::string s = b.substr(at, n);
        at += n;
        return s;
    }
    Json value(uint32_t type) {
        switch (type) {
        case 4: return get<uint32_t>();
        case 5: return get<int32_t>();
        case 6: return get<float>();
        case 8: return str();
        case 9: {
            const auto elem = get<uint32_t>();
            const auto n = get<uint64_t>();
            Json a = Json::array();
            for (uint64_t i = 0; i < n; ++i) a.push_back(value(elem));
            return a;
        }
        default: throw std::runtime_error("gguf: value type " + std::to_string(type) + " not expected here");
        }
    }
};

GgufFile read_gguf(const fs::path &path) {
    GgufFile f;
    f.bytes = read_file(path);
    Cursor c{f.bytes};
    EXPECT_EQ(f.bytes.substr(0, 4), "GGUF");
    c.at = 4;
    f.version = c.get<uint32_t>();
    const auto n_tensors = c.get<uint64_t>(), n_kv = c.get<uint64_t>();
    for (uint64_t i = 0; i < n_kv; ++i) {
        std::string key = c.str();
        const auto type = c.get<uint32_t>();
        f.kv_type[key] = type;
        f.kv[key] = c.value(type);
    }
    for (uint64_t i = 0; i < n_tensors; ++i) {
        std::string name = c.str();
        GgufTensor t;
        const auto dims = c.get<uint32_t>();
        for (uint32_t d = 0; d < dims; ++d) t.ne.push_back(c.get<uint64_t>());
        t.type = c.get<uint32_t>();
        t.offset = c.get<uint64_t>();
        f.order.push_back(name);
        f.tensors[name] = t;
    }
    f.data_start = (c.at + 31) / 32 * 32;
    return f;
}

// What llama.cpp's rwkv7 loader creates (src/models/rwkv7.cpp), in ggml order, for our sizes.
std::map<std::string, std::vector<uint64_t>> llama_cpp_rwkv7_shapes(int64_t layers, int64_t dw, int64_t da, int64_t dv,
                                                                    int64_t dg) {
    const uint64_t C = kC, V = kV, F = kF;
    std::map<std::string, std::vector<uint64_t>> s = {
        {"token_embd.weight", {C, V}},       {"token_embd_norm.weight", {C}}, {"token_embd_norm.bias", {C}},
        {"output_norm.weight", {C}},         {"output_norm.bias", {C}},       {"output.weight", {C, V}}};
    for (int64_t i = 0; i < layers; ++i) {
        const std::string b = "blk." + std::to_string(i) + ".";
        const uint64_t v_rank = uint64_t(i == 0 ? da : dv);
        for (const char *n : {"attn_norm", "attn_norm_2", "time_mix_ln"}) {
            s[b + n + ".weight"] = {C};
            s[b + n + ".bias"] = {C};
        }
        s[b + "time_mix_w0.weight"] = {C};
        s[b + "time_mix_w1.weight"] = {C, uint64_t(dw)};
        s[b + "time_mix_w2.weight"] = {uint64_t(dw), C};
        s[b + "time_mix_a0.weight"] = {C};
        s[b + "time_mix_a1.weight"] = {C, uint64_t(da)};
        s[b + "time_mix_a2.weight"] = {uint64_t(da), C};
        s[b + "time_mix_v0.weight"] = {C};
        s[b + "time_mix_v1.weight"] = {C, v_rank};
        s[b + "time_mix_v2.weight"] = {v_rank, C};
        s[b + "time_mix_g1.weight"] = {C, uint64_t(dg)};
        s[b + "time_mix_g2.weight"] = {uint64_t(dg), C};
        s[b + "time_mix_lerp_fused.weight"] = {C, 1, 1, 6};
        for (const char *n : {"time_mix_k_k", "time_mix_k_a", "time_mix_r_k"}) s[b + n + ".weight"] = {C};
        for (const char *n : {"time_mix_key", "time_mix_value", "time_mix_receptance", "time_mix_output"})
            s[b + n + ".weight"] = {C, C};
        s[b + "channel_mix_lerp_k.weight"] = {C, 1, 1};
        s[b + "channel_mix_key.weight"] = {C, F};
        s[b + "channel_mix_value.weight"] = {F, C};
    }
    return s;
}

// fla's RWKV7ForCausalLM state dict (fla/models/rwkv7/modeling_rwkv7.py, fla/layers/rwkv7.py), PyTorch order.
std::map<std::string, std::vector<int64_t>> fla_shapes(int64_t layers, int64_t dw, int64_t da, int64_t dv, int64_t dg) {
    std::map<std::string, std::vector<int64_t>> s = {{"model.embeddings.weight", {kV, kC}},
                                                     {"model.norm.weight", {kC}},
                                                     {"model.norm.bias", {kC}},
                                                     {"lm_head.weight", {kV, kC}}};
    for (int64_t i = 0; i < layers; ++i) {
        const std::string l = "model.layers." + std::to_string(i) + ".";
        std::vector<std::string> norms = {"attn_norm", "ffn_norm", "attn.g_norm"};
        if (i == 0) norms.push_back("pre_norm");
        for (const auto &n : norms) {
            s[l + n + ".weight"] = {kC};
            s[l + n + ".bias"] = {kC};
        }
        for (const char *x : {"x_r", "x_w", "x_k", "x_v", "x_a", "x_g"}) s[l + "attn." + x] = {1, 1, kC};
        s[l + "attn.k_k"] = {kC};
        s[l + "attn.k_a"] = {kC};
        s[l + "attn.r_k"] = {kH, kN};
        for (const char *p : {"r_proj", "k_proj", "v_proj", "o_proj"}) s[l + "attn." + p + ".weight"] = {kC, kC};
        auto lora = [&](const std::string &name, int64_t rank, bool bias) {
            s[l + "attn." + name + ".lora.0.weight"] = {rank, kC};
            s[l + "attn." + name + ".lora.2.weight"] = {kC, rank};
            if (bias) s[l + "attn." + name + ".lora.2.bias"] = {kC};
        };
        lora("w_lora", dw, true);
        lora("a_lora", da, true);
        if (i > 0) lora("v_lora", dv, true);
        lora("g_lora", dg, false);
        s[l + "ffn.x_k"] = {kC};
        s[l + "ffn.key.weight"] = {kF, kC};
        s[l + "ffn.value.weight"] = {kC, kF};
    }
    return s;
}

struct Ranks {
    int64_t w, a, v, g;
};
Ranks ranks_of(const std::string &checkpoint) {
    auto t = cdrmix::load_safetensors(checkpoint + "/model.safetensors");
    return {t.at("blocks.0.att.w1").size(1), t.at("blocks.0.att.a1").size(1), t.at("blocks.1.att.v1").size(1),
            t.at("blocks.0.att.g1").size(1)};
}

cdrmix::LoadedCheckpoint load(const std::string &dir) { return cdrmix::load_checkpoint(dir, cdrmix::Registry::global()); }

} // namespace

TEST(Export, CheckpointKeepsTheRunConfigInRunConfigJsonAndReadsTheOldName) {
    const fs::path dir = cdrmix::test::scratch_dir("export_run_config");
    const std::string ckpt = make_checkpoint(dir, export_spec());
    EXPECT_TRUE(fs::is_regular_file(fs::path(ckpt) / "run_config.json"));
    EXPECT_FALSE(fs::exists(fs::path(ckpt) / "config.json"));
    EXPECT_EQ(load(ckpt).run_config.value("script", ""), "experiments/x.lua");
    EXPECT_EQ(load(ckpt).run_config_file, (fs::path(ckpt) / "run_config.json").string());
    // A checkpoint written before the rename (and before manifests).
    fs::rename(fs::path(ckpt) / "run_config.json", fs::path(ckpt) / "config.json");
    fs::remove(fs::path(ckpt) / "manifest.json");
    EXPECT_EQ(load(ckpt).run_config.value("script", ""), "experiments/x.lua");
    EXPECT_EQ(load(ckpt).run_config_file, (fs::path(ckpt) / "config.json").string());
}

TEST(Export, HfFolderHasFlaWeightsConfigAndModelCard) {
    const fs::path dir = cdrmix::test::scratch_dir("export_hf");
    const std::string ckpt = make_checkpoint(dir, export_spec());
    const Ranks r = ranks_of(ckpt);
    cdrmix::export_hf(load(ckpt), (dir / "hf").string(), {});
    for (const char *f : {"model.safetensors", "config.json", "README.md", "cdrmix_tokenizer.json"})
        EXPECT_TRUE(fs::is_regular_file(dir / "hf" / f)) << f;
    EXPECT_FALSE(fs::exists(dir / "hf.tmp"));

    // Every tensor fla's RWKV7ForCausalLM has, with its shape, and nothing else.
    const auto tensors = cdrmix::load_safetensors((dir / "hf" / "model.safetensors").string());
    const auto expected = fla_shapes(2, r.w, r.a, r.v, r.g);
    EXPECT_EQ(tensors.size(), expected.size());
    for (const auto &[name, shape] : expected) {
        ASSERT_TRUE(tensors.count(name)) << name;
        EXPECT_EQ(tensors.at(name).sizes().vec(), shape) << name;
    }
    // LoRAs are nn.Linear weights: RWKV-LM's x @ w1 is lora.0(x) = x @ lora.0.weight^T.
    const auto source = cdrmix::load_safetensors(ckpt + "/model.safetensors");
    EXPECT_TRUE(tensors.at("model.layers.1.attn.w_lora.lora.0.weight").equal(source.at("blocks.1.att.w1").t()));
    EXPECT_TRUE(tensors.at("model.layers.1.attn.v_lora.lora.2.weight").equal(source.at("blocks.1.att.v2").t()));
    EXPECT_TRUE(tensors.at("model.layers.1.attn.v_lora.lora.2.bias").equal(source.at("blocks.1.att.v0").reshape({-1})));
    EXPECT_TRUE(tensors.at("model.layers.0.attn.k_k").equal(source.at("blocks.0.att.k_k").reshape({-1})));
    EXPECT_TRUE(tensors.at("model.layers.0.pre_norm.weight").equal(source.at("blocks.0.ln0.weight")));

    const Json config = Json::parse(read_file(dir / "hf" / "config.json"));
    EXPECT_EQ(config["model_type"], "rwkv7");
    EXPECT_EQ(config["architectures"], Json::array({"RWKV7ForCausalLM"}));
    EXPECT_EQ(config["hidden_size"], kC);
    EXPECT_EQ(config["num_hidden_layers"], 2);
    EXPECT_EQ(config["head_dim"], kN);
    EXPECT_EQ(config["intermediate_size"], kF);
    EXPECT_EQ(config["vocab_size"], kV);
    EXPECT_EQ(config["decay_low_rank_dim"], r.w);
    EXPECT_EQ(config["a_low_rank_dim"], r.a);
    EXPECT_EQ(config["v_low_rank_dim"], r.v);
    EXPECT_EQ(config["gate_low_rank_dim"], r.g);
    EXPECT_DOUBLE_EQ(config["norm_eps"].get<double>(), 1e-5);

    const std::string card = read_file(dir / "hf" / "README.md");
    EXPECT_EQ(card.rfind("---\nlicense: other\nlibrary_name: transformers\ntags:\n", 0), 0u) << card;
    EXPECT_NE(card.find("pipeline_tag: text-generation\n---\n"), std::string::npos) << card;
    const int64_t params = load(ckpt).model->num_parameters();
    EXPECT_NE(card.find("| parameters | " + std::to_string(params) + " total, " + std::to_string(params) +
                        " active per token |"),
              std::string::npos)
        << card;
    for (const char *row : {"| layers | 2 (hidden size 64) |", "| experts | none (dense) |",
                            "| tokenizer | byte, 256 tokens |", "| steps | 7 |", "| final train loss | 2.1000 |",
                            "| final val loss | 2.3000 |", "| trained by | `cdrmix run experiments/x.lua train.steps=7` |",
                            "corpus.txt"})
        EXPECT_NE(card.find(row), std::string::npos) << row << "\n" << card;

    EXPECT_NE(cdrmix::test::error_of([&] { cdrmix::export_hf(load(ckpt), (dir / "hf").string(), {}); })
                  .find("exists and is not an empty folder"),
              std::string::npos);
}

TEST(Export, HfFolderOfAnMoeModelUsesCdrmixsOwnModelType) {
    const fs::path dir = cdrmix::test::scratch_dir("export_hf_moe");
    Json spec = export_spec();
    spec["moe_every"] = 2;
    spec["num_experts"] = 4;
    spec["top_k"] = 2;
    const std::string ckpt = make_checkpoint(dir, spec);
    cdrmix::export_hf(load(ckpt), (dir / "hf").string(), {"float16", "apache-2.0"});
    const Json config = Json::parse(read_file(dir / "hf" / "config.json"));
    EXPECT_EQ(config["model_type"], "cdrmix");
    EXPECT_EQ(config["cdrmix_model"]["num_experts"], 4);
    const auto tensors = cdrmix::load_safetensors((dir / "hf" / "model.safetensors").string());
    ASSERT_TRUE(tensors.count("blocks.1.ffn.experts.3.key.weight"));
    EXPECT_EQ(tensors.at("blocks.1.ffn.experts.3.key.weight").scalar_type(), at::kHalf);
    const std::string card = read_file(dir / "hf" / "README.md");
    EXPECT_EQ(card.rfind("---\nlicense: apache-2.0\nlibrary_name: cdrmix\n", 0), 0u) << card;
    EXPECT_NE(card.find("- moe\n"), std::string::npos) << card;
    EXPECT_NE(card.find("| experts | 4 experts, top-2 in 1 of 2 layers |"), std::string::npos) << card;
    const auto model = load(ckpt).model;
    EXPECT_NE(card.find(" active per token |"), std::string::npos);
    EXPECT_EQ(card.find(std::to_string(model->num_parameters()) + " active per token"), std::string::npos)
        << "an MoE model uses fewer parameters per token than it has";
}

// The logits of a checkpoint's model for fixed tokens.
Tensor logits_of(cdrmix::Model &model) {
    torch::manual_seed(3);
    const Tensor tokens = torch::randint(kV, {2, 11}, torch::kLong);
    torch::NoGradGuard no_grad;
    cdrmix::ForwardContext ctx;
    return model.forward(tokens, nullptr, ctx);
}

TEST(Export, HfFolderImportsBackToTheSameModelAndTokenizer) {
    const fs::path dir = cdrmix::test::scratch_dir("export_round_trip");
    const auto original = load(make_checkpoint(dir, export_spec(), cdrmix::make_char_tokenizer("abc xyz\n")));
    cdrmix::export_hf(original, (dir / "hf").string(), {});
    cdrmix::export_hf(original, (dir / "hf16").string(), {"float16"});
    auto import = [&](const char *from) {
        const std::string out = cdrmix::import_model({"hf", (dir / from).string(), (dir / (std::string(from) + "_ckpt")).string(),
                                                      "float32", ""},
                                                     cdrmix::Registry::global());
        return load(out);
    };
    const auto back = import("hf");
    EXPECT_EQ(cdrmix::test::max_abs_diff(logits_of(*back.model), logits_of(*original.model)), 0.0);
    EXPECT_EQ(back.tokenizer->to_json(), original.tokenizer->to_json());
    EXPECT_EQ(back.model->num_parameters(), original.model->num_parameters());

    // float16: the same as the original with every weight rounded to half precision.
    const auto half = import("hf16");
    {
        torch::NoGradGuard no_grad;
        for (auto &p : original.model->parameters()) p.copy_(p.to(at::kHalf).to(at::kFloat));
    }
    EXPECT_EQ(cdrmix::test::max_abs_diff(logits_of(*half.model), logits_of(*original.model)), 0.0);
}

TEST(Export, GgufHasLlamaCppRwkv7NamesShapesAndMetadata) {
    const fs::path dir = cdrmix::test::scratch_dir("export_gguf");
    const std::string ckpt = make_checkpoint(dir, export_spec());
    const Ranks r = ranks_of(ckpt);
    cdrmix::export_gguf(load(ckpt), (dir / "m.gguf").string(), {});
    const GgufFile g = read_gguf(dir / "m.gguf");
    EXPECT_EQ(g.version, 3u);

    const auto expected = llama_cpp_rwkv7_shapes(2, r.w, r.a, r.v, r.g);
    EXPECT_EQ(g.tensors.size(), expected.size());
    uint64_t end = 0;
    for (const auto &[name, ne] : expected) {
        ASSERT_TRUE(g.tensors.count(name)) << name;
        const GgufTensor &t = g.tensors.at(name);
        EXPECT_EQ(t.ne, ne) << name;
        EXPECT_EQ(t.type, 0u) << name; // F32
        EXPECT_EQ(t.offset % 32, 0u) << name;
        end = std::max<uint64_t>(end, t.offset + uint64_t(g.f32(name).numel()) * 4);
    }
    EXPECT_EQ(g.data_start % 32, 0u);
    EXPECT_EQ(g.bytes.size(), g.data_start + (end + 31) / 32 * 32) << "data section ends padded to the alignment";

    // Values land where llama.cpp reads them.
    const auto src = cdrmix::load_safetensors(ckpt + "/model.safetensors");
    Tensor fused = g.f32("blk.1.time_mix_lerp_fused.weight").view({6, kC});
    const char *order[] = {"x_r", "x_w", "x_k", "x_v", "x_a", "x_g"};
    for (int k = 0; k < 6; ++k)
        EXPECT_TRUE(fused[k].equal(src.at(std::string("blocks.1.att.") + order[k]).reshape({-1}))) << order[k];
    // ggml ne [C, rank] row-major is PyTorch [rank, C]: w1 transposed.
    EXPECT_TRUE(g.f32("blk.1.time_mix_w1.weight").view({r.w, kC}).equal(src.at("blocks.1.att.w1").t()));
    EXPECT_TRUE(g.f32("blk.0.time_mix_r_k.weight").equal(src.at("blocks.0.att.r_k").reshape({-1})));
    EXPECT_TRUE(g.f32("blk.0.time_mix_v1.weight").equal(g.f32("blk.0.time_mix_a1.weight")));
    EXPECT_TRUE(g.f32("blk.1.channel_mix_key.weight").view({kF, kC}).equal(src.at("blocks.1.ffn.key.weight")));
    EXPECT_TRUE(g.f32("token_embd_norm.bias").equal(src.at("blocks.0.ln0.bias")));

    const std::map<std::string, Json> meta = {{"general.architecture", "rwkv7"},
                                              {"rwkv7.embedding_length", kC},
                                              {"rwkv7.feed_forward_length", kF},
                                              {"rwkv7.block_count", 2},
                                              {"rwkv7.wkv.head_size", kN},
                                              {"rwkv7.attention.decay_lora_rank", r.w},
                                              {"rwkv7.attention.iclr_lora_rank", r.a},
                                              {"rwkv7.attention.value_residual_mix_lora_rank", r.v},
                                              {"rwkv7.attention.gate_lora_rank", r.g},
                                              {"rwkv7.token_shift_count", 2},
                                              {"general.file_type", 0},
                                              {"tokenizer.ggml.model", "rwkv"}};
    for (const auto &[key, value] : meta) EXPECT_EQ(g.kv.at(key), value) << key;
    // llama.cpp reads these as uint32 and refuses another type.
    for (const char *key : {"rwkv7.context_length", "rwkv7.embedding_length", "rwkv7.wkv.head_size",
                            "rwkv7.attention.gate_lora_rank", "rwkv7.token_shift_count"})
        EXPECT_EQ(g.kv_type.at(key), 4u) << key;
    EXPECT_NEAR(g.kv.at("rwkv7.attention.layer_norm_epsilon").get<double>(), 1e-5, 1e-12);
    const Json &tokens = g.kv.at("tokenizer.ggml.tokens");
    ASSERT_EQ(tokens.size(), size_t(kV));
    EXPECT_EQ(tokens[0], "\\x00");
    EXPECT_EQ(tokens[10], "\\n");
    EXPECT_EQ(tokens[65], "A");
    EXPECT_EQ(tokens[92], "\\\\");
    EXPECT_EQ(tokens[255], "\\xff");
}

TEST(Export, GgufHalfKeepsVectorsAndTheDecayLoraInFloat32) {
    const fs::path dir = cdrmix::test::scratch_dir("export_gguf_f16");
    const std::string ckpt = make_checkpoint(dir, export_spec());
    cdrmix::export_gguf(load(ckpt), (dir / "f32.gguf").string(), {});
    cdrmix::export_gguf(load(ckpt), (dir / "f16.gguf").string(), {"float16"});
    const GgufFile full = read_gguf(dir / "f32.gguf"), half = read_gguf(dir / "f16.gguf");
    EXPECT_EQ(half.kv.at("general.file_type"), 1);
    for (const char *name : {"token_embd.weight", "output.weight", "blk.0.time_mix_key.weight", "blk.1.time_mix_a1.weight",
                             "blk.1.time_mix_g2.weight", "blk.1.channel_mix_value.weight"}) {
        EXPECT_EQ(half.tensors.at(name).type, 1u) << name; // F16
        const Tensor a = full.f32(name), b = half.f32(name);
        EXPECT_TRUE(b.equal(a.to(at::kHalf).to(at::kFloat))) << name;
    }
    for (const char *name : {"blk.0.time_mix_w1.weight", "blk.0.time_mix_w2.weight", "blk.0.time_mix_lerp_fused.weight",
                             "blk.0.time_mix_w0.weight", "blk.0.channel_mix_lerp_k.weight", "token_embd_norm.weight"}) {
        EXPECT_EQ(half.tensors.at(name).type, 0u) << name;
        EXPECT_TRUE(half.f32(name).equal(full.f32(name))) << name;
    }
    EXPECT_LT(fs::file_size(dir / "f16.gguf"), fs::file_size(dir / "f32.gguf"));
}

TEST(Export, GgufRefusesWhatLlamaCppCannotHoldInOneLineNamingTheLayer) {
    const fs::path dir = cdrmix::test::scratch_dir("export_refuse");
    auto refusal = [&](const Json &spec, const std::string &name,
                       std::shared_ptr<cdrmix::Tokenizer> tok = cdrmix::make_byte_tokenizer()) {
        const std::string ckpt = make_checkpoint(dir / name, spec, tok);
        const std::string e =
            cdrmix::test::error_of([&] { cdrmix::export_gguf(load(ckpt), (dir / (name + ".gguf")).string(), {}); });
        EXPECT_EQ(e.find('\n'), std::string::npos) << e;
        EXPECT_FALSE(fs::exists(dir / (name + ".gguf")));
        return e;
    };
    Json moe = export_spec();
    moe["moe_every"] = 2;
    moe["num_experts"] = 4;
    EXPECT_EQ(refusal(moe, "moe"), "cannot export to gguf (llama.cpp rwkv7): layer 1 is not a dense RWKV-7 layer: its "
                                   "FFN is an MoE layer (4 experts)");
    Json attention = export_spec();
    attention["layers"] = {Json::object(), {{"mixer", {{"type", "attention"}, {"num_heads", 2}}}}};
    EXPECT_EQ(refusal(attention, "attention"), "cannot export to gguf (llama.cpp rwkv7): layer 1 is not a dense RWKV-7 "
                                               "layer: its mixer is 'attention', not RWKV-7 time mixing");
    Json rms = export_spec();
    rms["norm"] = "rmsnorm";
    EXPECT_EQ(refusal(rms, "rms"), "cannot export to gguf (llama.cpp rwkv7): the model's norm is 'rmsnorm'; RWKV-7 uses "
                                   "LayerNorm");
    Json narrow_heads = export_spec();
    narrow_heads["mixer"]["head_size"] = 32;
    EXPECT_EQ(refusal(narrow_heads, "heads32"), "cannot export to gguf (llama.cpp rwkv7): the head size is 32; llama.cpp's "
                                                "rwkv7 kernels compute head sizes 64 and 128 only (mixer.head_size)");
    EXPECT_NE(refusal(export_spec(), "ids", cdrmix::make_id_tokenizer(kV))
                  .find("the checkpoint's tokenizer is 'ids'"),
              std::string::npos);
}

TEST(Export, CharTokensAreEscapedTheWayLlamaCppUnescapes) {
    // llama.cpp's llama_unescape_rwkv_token, restated: \t \n \r \xNN (lower case), \c -> c.
    auto unescape = [](const std::string &s) {
        std::string out;
        for (size_t i = 0; i < s.size(); ++i) {
            if (s[i] != '\\') {
                out += s[i];
                continue;
            }
            const char c = s[++i];
            if (c == 't') out += '\t';
            else if (c == 'n') out += '\n';
            else if (c == 'r') out += '\r';
            else if (c == 'x') {
                out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
                i += 2;
            } else out += c;
        }
        return out;
    };
    const std::string text = "caf\xc3\xa9 \\ 'q' \"d\"\t\r\n\x01\x7f";
    auto tok = cdrmix::make_char_tokenizer(text);
    const auto tokens = cdrmix::rwkv_token_list(*tok, tok->vocab_size() + 2);
    ASSERT_EQ(tokens.size(), size_t(tok->vocab_size() + 2));
    for (int64_t id = 0; id < tok->vocab_size(); ++id) {
        EXPECT_EQ(unescape(tokens[size_t(id)]), tok->decode({id})) << tokens[size_t(id)];
        for (unsigned char c : tokens[size_t(id)]) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << tokens[size_t(id)];
    }
    EXPECT_EQ(tokens.back(), "[PAD" + std::to_string(tok->vocab_size() + 1) + "]");
}
