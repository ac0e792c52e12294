// Import of published RWKV-7 weights: a random model written in RWKV-LM's
// naming (torch.save's zip format and safetensors) and in flash-linear-
// attention's Hugging Face naming imports to a checkpoint whose logits equal
// the original's; each bad input is one line naming its cause.
#include "interop/import_model.hpp"
#include "interop/import_torch_save.hpp"
#include "model/model.hpp"
#include "test_util.hpp"
#include "train/checkpoint.hpp"
#include "train/safetensors.hpp"

#include <caffe2/serialize/inline_container.h>
#include <torch/serialize.h>

#include <cstdio>
#include <fstream>

using cdrmix::Json;
using cdrmix::test::error_of;
using cdrmix::test::max_abs_diff;
using torch::Tensor;
using Tensors = std::map<std::string, Tensor>;
namespace fs = std::filesystem;

namespace {

constexpr int64_t V = 40, C = 32, L = 3, N = 16, F = 64;

// LoRA ranks unlike the defaults, so the import must read them from the shapes.
Json source_spec() {
    return {{"vocab_size", V},
            {"hidden_size", C},
            {"num_layers", L},
            {"mixer",
             {{"type", "rwkv7_time_mix"}, {"head_size", N}, {"decay_lora", 8}, {"a_lora", 12}, {"v_lora", 4},
              {"gate_lora", 16}}},
            {"ffn", {{"type", "rwkv_channel_mix"}, {"expansion", double(F) / C}}}};
}

std::shared_ptr<cdrmix::Model> original() {
    auto m = std::make_shared<cdrmix::Model>(cdrmix::ModelSpec::from_json(source_spec(), "test"),
                                             cdrmix::Registry::global());
    cdrmix::test::perturb(*m, 0.3, 5);
    return m;
}

Tensor logits(cdrmix::Model &m) {
    torch::manual_seed(11);
    const Tensor tokens = torch::randint(V, {2, 9}, torch::kLong);
    torch::NoGradGuard no_grad;
    cdrmix::ForwardContext ctx;
    return m.forward(tokens, nullptr, ctx);
}

// RWKV-LM's state dict: the model's names and shapes, plus the v0/v1/v2 RWKV-LM keeps in layer 0;
// one vector stored flat, as some tools save them.
Tensors rwkv_lm_tensors(cdrmix::Model &m) {
    Tensors t;
    for (const auto &p : m.named_parameters()) t[p.key()] = p.value().detach().clone();
    t["blocks.0.att.v0"] = torch::randn({1, 1, C});
    t["blocks.0.att.v1"] = torch::randn({C, 4});
    t["blocks.0.att.v2"] = torch::randn({4, C});
    t["blocks.1.att.k_k"] = t["blocks.1.att.k_k"].reshape({C});
    return t;
}

// flash-linear-attention's names, written out by hand from its RWKV-7 model and conversion script:
// LoRA matrices transposed (nn.Linear weights), X0 as the second Linear's bias, k_k/k_a/ffn.x_k flat.
Tensors fla_tensors(cdrmix::Model &m) {
    Tensors r;
    for (const auto &p : m.named_parameters()) r[p.key()] = p.value().detach().clone();
    Tensors t = {{"model.embeddings.weight", r["emb.weight"]},
                 {"model.norm.weight", r["ln_out.weight"]},
                 {"model.norm.bias", r["ln_out.bias"]},
                 {"lm_head.weight", r["head.weight"]},
                 {"model.layers.0.pre_norm.weight", r["blocks.0.ln0.weight"]},
                 {"model.layers.0.pre_norm.bias", r["blocks.0.ln0.bias"]}};
    for (int64_t i = 0; i < L; ++i) {
        const std::string b = "blocks." + std::to_string(i) + ".", f = "model.layers." + std::to_string(i) + ".";
        for (const char *n : {"weight", "bias"}) {
            t[f + "attn_norm." + n] = r[b + "ln1." + n];
            t[f + "ffn_norm." + n] = r[b + "ln2." + n];
            t[f + "attn.g_norm." + n] = r[b + "att.ln_x." + n];
        }
        for (const char *x : {"x_r", "x_w", "x_k", "x_v", "x_a", "x_g"}) t[f + "attn." + x] = r[b + "att." + x];
        t[f + "attn.k_k"] = r[b + "att.k_k"].reshape({C});
        t[f + "attn.k_a"] = r[b + "att.k_a"].reshape({C});
        t[f + "attn.r_k"] = r[b + "att.r_k"];
        t[f + "attn.r_proj.weight"] = r[b + "att.receptance.weight"];
        t[f + "attn.k_proj.weight"] = r[b + "att.key.weight"];
        t[f + "attn.v_proj.weight"] = r[b + "att.value.weight"];
        t[f + "attn.o_proj.weight"] = r[b + "att.output.weight"];
        for (const std::string x : {"w", "a", "v", "g"}) {
            if (x == "v" && i == 0) continue; // fla's layer 0 has no v_lora
            t[f + "attn." + x + "_lora.lora.0.weight"] = r[b + "att." + x + "1"].t().contiguous();
            t[f + "attn." + x + "_lora.lora.2.weight"] = r[b + "att." + x + "2"].t().contiguous();
            if (x != "g") t[f + "attn." + x + "_lora.lora.2.bias"] = r[b + "att." + x + "0"].reshape({C});
        }
        t[f + "ffn.x_k"] = r[b + "ffn.x_k"].reshape({C});
        t[f + "ffn.key.weight"] = r[b + "ffn.key.weight"];
        t[f + "ffn.value.weight"] = r[b + "ffn.value.weight"];
    }
    return t;
}

Json fla_config(const std::string &model_type = "rwkv7") {
    return {{"model_type", model_type},
            {"architectures", {"RWKV7ForCausalLM"}},
            {"hidden_size", C},
            {"num_hidden_layers", L},
            {"head_dim", N},
            {"decay_low_rank_dim", 8},
            {"a_low_rank_dim", 12},
            {"v_low_rank_dim", 4},
            {"gate_low_rank_dim", 16},
            {"intermediate_size", F},
            {"hidden_act", "sqrelu"},
            {"norm_eps", 1e-5},
            {"attn", nullptr},
            {"vocab_size", V}};
}

void write_pth(const fs::path &path, const Tensors &tensors) {
    c10::Dict<std::string, Tensor> dict;
    for (const auto &[name, t] : tensors) dict.insert(name, t);
    const std::vector<char> bytes = torch::pickle_save(dict);
    std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

void write_safetensors(const fs::path &path, const Tensors &tensors) {
    cdrmix::save_safetensors(path.string(), {tensors.begin(), tensors.end()});
}

fs::path write_fla_folder(const fs::path &dir, const Tensors &tensors, const Json &config = fla_config()) {
    fs::create_directories(dir);
    std::ofstream(dir / "config.json") << config.dump(2);
    write_safetensors(dir / "model.safetensors", tensors);
    return dir;
}

cdrmix::ImportOptions options(const std::string &format, const fs::path &source, const fs::path &out,
                              const std::string &dtype = "") {
    return {format, source.string(), out.string(), dtype, ""};
}

std::string import(const cdrmix::ImportOptions &o) { return cdrmix::import_model(o, cdrmix::Registry::global()); }

double imported_logit_difference(const std::string &dir, cdrmix::Model &reference, const char *what) {
    const auto loaded = cdrmix::load_checkpoint(dir, cdrmix::Registry::global());
    const double diff = max_abs_diff(logits(*loaded.model), logits(reference));
    std::printf("[ import ] %s: max |logit difference| = %.3g\n", what, diff);
    return diff;
}

// The message of a failing import: one line, and no output folder left behind.
std::string import_error(const cdrmix::ImportOptions &o) {
    const std::string m = error_of([&] { import(o); });
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    EXPECT_FALSE(fs::exists(o.out)) << o.out;
    return m;
}

} // namespace

TEST(Import, RwkvLmPthGivesTheSameLogits) {
    const auto dir = cdrmix::test::scratch_dir("import_pth");
    auto m = original();
    write_pth(dir / "rwkv.pth", rwkv_lm_tensors(*m));
    std::string report;
    const std::string out =
        cdrmix::import_model(options("rwkv-lm", dir / "rwkv.pth", dir / "ckpt"), cdrmix::Registry::global(), &report);
    EXPECT_NE(report.find("ignored (unused by RWKV-7's first layer): blocks.0.att.v0 blocks.0.att.v1 blocks.0.att.v2"),
              std::string::npos)
        << report;
    EXPECT_EQ(imported_logit_difference(out, *m, "RWKV-LM .pth"), 0.0);
    const Json spec = cdrmix::read_checkpoint_json(out, "model.json");
    EXPECT_EQ(spec["mixer"]["decay_lora"], 8);
    EXPECT_EQ(spec["mixer"]["a_lora"], 12);
    EXPECT_EQ(spec["mixer"]["v_lora"], 4);
    EXPECT_EQ(spec["mixer"]["gate_lora"], 16);
    EXPECT_EQ(spec["intermediate_size"], F);
    EXPECT_EQ(cdrmix::read_checkpoint_json(out, cdrmix::kImportRecord)["dtype"], "float32");
}

TEST(Import, RwkvLmSafetensorsInBf16WidensOnRequest) {
    const auto dir = cdrmix::test::scratch_dir("import_bf16");
    auto m = original();
    Tensors t = rwkv_lm_tensors(*m);
    for (auto &entry : t) entry.second = entry.second.to(torch::kBFloat16);
    write_safetensors(dir / "rwkv.safetensors", t);
    {
        torch::NoGradGuard no_grad; // the reference holds the same bf16-rounded values
        for (auto &p : m->parameters()) p.copy_(p.to(torch::kBFloat16));
    }
    const std::string wide = import(options("rwkv-lm", dir / "rwkv.safetensors", dir / "wide", "float32"));
    EXPECT_EQ(cdrmix::load_safetensors(wide + "/model.safetensors").at("head.weight").scalar_type(), torch::kFloat);
    EXPECT_EQ(imported_logit_difference(wide, *m, "bf16 safetensors widened to float32"), 0.0);
    // Without --dtype the checkpoint keeps bf16 (loading widens it into the float32 model).
    const std::string kept = import(options("rwkv-lm", dir / "rwkv.safetensors", dir / "kept"));
    EXPECT_EQ(cdrmix::load_safetensors(kept + "/model.safetensors").at("head.weight").scalar_type(),
              torch::kBFloat16);
    EXPECT_EQ(imported_logit_difference(kept, *m, "bf16 safetensors kept"), 0.0);
}

TEST(Import, FlaFolderGivesTheSameLogits) {
    const auto dir = cdrmix::test::scratch_dir("import_fla");
    auto m = original();
    const std::string out = import(options("hf", write_fla_folder(dir / "hf", fla_tensors(*m)), dir / "ckpt"));
    EXPECT_EQ(imported_logit_difference(out, *m, "flash-linear-attention folder"), 0.0);
    EXPECT_EQ(cdrmix::read_checkpoint_json(out, "model.json")["mixer"]["gate_lora"], 16);
}

TEST(Import, FlaFolderTakesItsWorldVocabulary) {
    const auto dir = cdrmix::test::scratch_dir("import_fla_vocab");
    auto m = original();
    const fs::path hf = write_fla_folder(dir / "hf", fla_tensors(*m));
    std::ofstream(hf / "rwkv_vocab_v20230424.txt") << "1 'a' 1\n2 'b' 1\n3 'ab' 2\n";
    const auto loaded = cdrmix::load_checkpoint(import(options("hf", hf, dir / "ckpt")), cdrmix::Registry::global());
    EXPECT_EQ(loaded.tokenizer->kind(), "world");
    EXPECT_EQ(loaded.tokenizer->vocab_size(), V); // the model's, not the vocabulary's largest id + 1
    EXPECT_EQ(loaded.tokenizer->encode("abba"), (std::vector<int64_t>{3, 2, 1}));
}

TEST(Import, BadInputsAreOneLineNamingTheCause) {
    const auto dir = cdrmix::test::scratch_dir("import_bad");
    auto m = original();
    const Tensors good = rwkv_lm_tensors(*m);
    auto rwkv_lm_error = [&](const std::string &name, Tensors t) {
        write_safetensors(dir / (name + ".safetensors"), t);
        return import_error(options("rwkv-lm", dir / (name + ".safetensors"), dir / ("out-" + name)));
    };
    auto expect = [](const std::string &message, const std::string &part) {
        EXPECT_NE(message.find(part), std::string::npos) << message;
    };

    write_pth(dir / "whole.pth", good);
    std::string bytes;
    {
        std::ifstream in(dir / "whole.pth", std::ios::binary);
        bytes.assign(std::istreambuf_iterator<char>(in), {});
    }
    std::ofstream(dir / "truncated.pth", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
    expect(import_error(options("rwkv-lm", dir / "truncated.pth", dir / "out")),
           "truncated.pth: not a readable torch.save/LibTorch archive: no zip end record");

    Tensors rwkv6 = good;
    rwkv6.erase("blocks.0.att.r_k");
    rwkv6["blocks.0.att.time_decay"] = torch::zeros({C});
    expect(rwkv_lm_error("rwkv6", rwkv6),
           "rwkv6.safetensors: not an RWKV-7 model: no 'blocks.0.att.r_k' (time_decay: an RWKV-4/5/6 checkpoint)");

    Tensors extra = good;
    extra["blocks.1.att.bonus"] = torch::zeros({C});
    expect(rwkv_lm_error("extra", extra),
           "extra.safetensors: 1 tensor(s) have no place in an RWKV-7 model: blocks.1.att.bonus");

    Tensors missing = good;
    missing.erase("blocks.2.att.a2");
    expect(rwkv_lm_error("missing", missing),
           "missing.safetensors: missing tensor 'blocks.2.att.a2' (the model expects shape [12, 32])");

    Tensors misshapen = good;
    misshapen["blocks.1.att.w2"] = torch::zeros({8, 31});
    expect(rwkv_lm_error("misshapen", misshapen),
           "misshapen.safetensors: tensor 'blocks.1.att.w2' has shape [8, 31], the model expects [8, 32]");

    Tensors fla = fla_tensors(*m);
    fla["model.layers.1.attn.a_lora.lora.0.weight"] = torch::zeros({12, 31});
    expect(import_error(options("hf", write_fla_folder(dir / "fla_misshapen", fla), dir / "out")),
           "fla_misshapen: tensor 'model.layers.1.attn.a_lora.lora.0.weight (blocks.1.att.a1, transposed)' has "
           "shape [31, 12], the model expects [32, 12]");
    expect(import_error(options("hf", write_fla_folder(dir / "llama", fla_tensors(*m), fla_config("llama")),
                                dir / "out")),
           "config.json: model_type 'llama' is not an RWKV-7 model (expected rwkv7)");

    fs::create_directories(dir / "taken");
    std::ofstream(dir / "taken" / "file") << "x";
    write_pth(dir / "ok.pth", good);
    expect(error_of([&] { import(options("rwkv-lm", dir / "ok.pth", dir / "taken")); }),
           "taken: exists and is not empty");
}

// A torch.save zip holding {'w': _rebuild_tensor_v2(storage, offset, (3,), (1,), False, OrderedDict())}
// over the floats 0, 1, 2, 3, pickled by hand as Python writes it; `global` replaces the rebuild function.
void write_hand_pickled(const fs::path &path, int offset, int numel, const std::string &global) {
    auto text = [](const std::string &s) { // BINUNICODE: 'X', a little-endian uint32 length, the bytes
        std::string out = "X";
        for (int i = 0; i < 4; ++i) out += char((s.size() >> (8 * i)) & 0xff);
        return out + s;
    };
    const std::string pkl = "\x80\x02}(" + text("w") + "c" + global + "\n((" + text("storage") +
                            "ctorch\nFloatStorage\n" + text("0") + text("cpu") + "K" + char(numel) + "tQK" +
                            char(offset) + "K\x03\x85K\x01\x85\x89" + "ccollections\nOrderedDict\n)RtRu.";
    const float data[] = {0, 1, 2, 3};
    std::ofstream out(path, std::ios::binary);
    caffe2::serialize::PyTorchStreamWriter zip([&](const void *p, size_t n) {
        out.write(static_cast<const char *>(p), static_cast<std::streamsize>(n));
        return n;
    });
    zip.writeRecord("data.pkl", pkl.data(), pkl.size());
    zip.writeRecord("data/0", data, sizeof data);
    zip.writeEndOfFile();
}

TEST(Import, TorchSaveReaderChecksWhatThePickleSays) {
    const auto dir = cdrmix::test::scratch_dir("import_pickle");
    const fs::path file = dir / "x.pth";
    write_hand_pickled(file, 1, 4, "torch._utils\n_rebuild_tensor_v2");
    const auto t = cdrmix::read_torch_save(file.string());
    ASSERT_EQ(t.count("w"), 1u);
    EXPECT_TRUE(t.at("w").equal(torch::tensor({1.0f, 2.0f, 3.0f})));
    auto expect = [&](int offset, int numel, const std::string &global, const std::string &part) {
        write_hand_pickled(file, offset, numel, global);
        const std::string m = error_of([&] { cdrmix::read_torch_save(file.string()); });
        EXPECT_NE(m.find("x.pth: not a readable torch.save file (" + part), std::string::npos) << m;
    };
    expect(2, 4, "torch._utils\n_rebuild_tensor_v2", "a tensor reaches past its storage");
    expect(1, 5, "torch._utils\n_rebuild_tensor_v2", "record data/0 holds 16 bytes, not 5 elements of 4");
    expect(1, 4, "os\nsystem", "unsupported object os.system");
}

TEST(Import, OptionsAreCheckedByTheirSchema) {
    auto from = [](const Json &j) {
        return error_of([&] { cdrmix::ImportOptions::from_config(cdrmix::Config(j, "import", "command line")); });
    };
    const Json ok = {{"format", "rwkv-lm"}, {"source", "x.pth"}, {"out", "o"}};
    Json bad_format = ok, bad_dtype = ok, typo = ok;
    bad_format["format"] = "gguf";
    bad_dtype["dtype"] = "float8";
    typo["vocabb"] = "v.txt";
    EXPECT_NE(from(bad_format).find("key 'format' must be one of"), std::string::npos) << from(bad_format);
    EXPECT_NE(from(bad_dtype).find("key 'dtype' must be one of"), std::string::npos) << from(bad_dtype);
    EXPECT_NE(from(typo).find("did you mean 'vocab'?"), std::string::npos) << from(typo);
}
