#include "interop/export_gguf.hpp"

#include <cdrmix/error.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

namespace cdrmix {

namespace {

// llama.cpp's llama_token_type values (tokenizer.ggml.token_type).
constexpr int32_t kTokenNormal = 1, kTokenUnused = 5;
// llama_ftype: general.file_type.
constexpr uint32_t kAllF32 = 0, kMostlyF16 = 1;
// RWKV has no context limit; llama.cpp's converter writes this for every RWKV model.
constexpr uint32_t kUnlimitedContext = 1048576;

std::string blk(int64_t i, const char *name) { return "blk." + std::to_string(i) + "." + name + ".weight"; }
std::string att(int64_t i, const char *name) { return "blocks." + std::to_string(i) + ".att." + name; }

} // namespace

std::string escape_rwkv_token(const std::string &bytes) {
    std::string out;
    for (unsigned char c : bytes) {
        if (c == '\\') out += "\\\\";
        else if (c == '\t') out += "\\t";
        else if (c == '\n') out += "\\n";
        else if (c == '\r') out += "\\r";
        else if (c >= 0x20 && c < 0x7f) out += static_cast<char>(c);
        else {
            char hex[5];
            std::snprintf(hex, sizeof hex, "\\x%02x", c); // lower case: llama.cpp reads no other
            out += hex;
        }
    }
    return out;
}

std::vector<std::string> rwkv_token_list(const Tokenizer &tokenizer, int64_t model_vocab) {
    const std::string kind = tokenizer.kind();
    if (kind != "byte" && kind != "char")
        throw Error("cannot export to gguf: the checkpoint's tokenizer is '" + kind +
                    "'; llama.cpp's rwkv tokenizer (greedy longest match over bytes) matches CDRmix's byte and char "
                    "tokenizers only");
    if (tokenizer.vocab_size() > model_vocab)
        throw Error("cannot export to gguf: the tokenizer has " + std::to_string(tokenizer.vocab_size()) +
                    " tokens, the model's embedding only " + std::to_string(model_vocab));
    std::vector<std::string> tokens;
    for (int64_t id = 0; id < tokenizer.vocab_size(); ++id) tokens.push_back(escape_rwkv_token(tokenizer.decode({id})));
    for (int64_t id = tokenizer.vocab_size(); id < model_vocab; ++id) tokens.push_back("[PAD" + std::to_string(id) + "]");
    return tokens;
}

void add_rwkv7_gguf(GgufWriter &out, const Rwkv7Dims &d, const NamedWeights &w, bool half) {
    const std::string arch = "rwkv7";
    out.add_string("general.architecture", arch);
    out.add_uint32("general.file_type", half ? kMostlyF16 : kAllF32);
    out.add_uint32(arch + ".context_length", kUnlimitedContext);
    out.add_uint32(arch + ".embedding_length", static_cast<uint32_t>(d.hidden));
    out.add_uint32(arch + ".feed_forward_length", static_cast<uint32_t>(d.ffn));
    out.add_uint32(arch + ".block_count", static_cast<uint32_t>(d.layers));
    out.add_float32(arch + ".attention.layer_norm_epsilon", static_cast<float>(d.norm_eps));
    out.add_uint32(arch + ".wkv.head_size", static_cast<uint32_t>(d.head_size));
    out.add_uint32(arch + ".attention.decay_lora_rank", static_cast<uint32_t>(d.decay_rank));
    out.add_uint32(arch + ".attention.iclr_lora_rank", static_cast<uint32_t>(d.a_rank));
    out.add_uint32(arch + ".attention.value_residual_mix_lora_rank", static_cast<uint32_t>(d.v_rank));
    out.add_uint32(arch + ".attention.gate_lora_rank", static_cast<uint32_t>(d.gate_rank));
    out.add_uint32(arch + ".token_shift_count", 2); // the mixer's and the FFN's previous token
    out.add_uint32(arch + ".attention.head_count", 0); // read by llama.cpp's generic loader, unused by RWKV

    // Matrices go to float16 when asked; vectors, the fused mixes and the decay LoRA stay float32.
    auto matrix = [&](const std::string &name, const at::Tensor &t) {
        out.add_tensor(name, half ? t.to(at::kHalf) : t.to(at::kFloat), t.sizes().vec());
    };
    auto f32 = [&](const std::string &name, const at::Tensor &t, std::vector<int64_t> shape) {
        out.add_tensor(name, t.to(at::kFloat), shape);
    };
    const int64_t C = d.hidden;
    matrix("token_embd.weight", weight(w, "emb.weight"));
    f32("token_embd_norm.weight", weight(w, "blocks.0.ln0.weight"), {C});
    f32("token_embd_norm.bias", weight(w, "blocks.0.ln0.bias"), {C});
    f32("output_norm.weight", weight(w, "ln_out.weight"), {C});
    f32("output_norm.bias", weight(w, "ln_out.bias"), {C});
    matrix("output.weight", weight(w, "head.weight"));
    for (int64_t i = 0; i < d.layers; ++i) {
        const std::string b = "blocks." + std::to_string(i) + ".";
        const std::string l = "blk." + std::to_string(i) + ".";
        for (const char *p : {"weight", "bias"}) {
            f32(l + "attn_norm." + p, weight(w, b + "ln1." + p), {C});
            f32(l + "attn_norm_2." + p, weight(w, b + "ln2." + p), {C});
            f32(l + "time_mix_ln." + p, weight(w, b + "att.ln_x." + p), {C});
        }
        // RWKV-LM's x @ w1 @ w2 is ggml's mul_mat(w2, mul_mat(w1, x)): each LoRA matrix transposed.
        // Layer 0 has no value residual; llama.cpp still loads v0/v1/v2 there (at the a LoRA's rank).
        for (char lora : {'w', 'a', 'v', 'g'}) {
            const char src = (lora == 'v' && i == 0) ? 'a' : lora;
            const std::string from = att(i, "") + src, to = std::string("time_mix_") + lora;
            if (lora != 'g') f32(blk(i, (to + "0").c_str()), weight(w, from + "0"), {C});
            const at::Tensor m1 = weight(w, from + "1").t().contiguous(), m2 = weight(w, from + "2").t().contiguous();
            if (lora == 'w') {
                f32(blk(i, (to + "1").c_str()), m1, m1.sizes().vec());
                f32(blk(i, (to + "2").c_str()), m2, m2.sizes().vec());
            } else {
                matrix(blk(i, (to + "1").c_str()), m1);
                matrix(blk(i, (to + "2").c_str()), m2);
            }
        }
        std::vector<at::Tensor> mixes;
        for (const char *x : {"x_r", "x_w", "x_k", "x_v", "x_a", "x_g"}) mixes.push_back(weight(w, att(i, x)).reshape({C}));
        f32(blk(i, "time_mix_lerp_fused"), torch::stack(mixes), {6, 1, 1, C});
        f32(blk(i, "time_mix_k_k"), weight(w, att(i, "k_k")), {C});
        f32(blk(i, "time_mix_k_a"), weight(w, att(i, "k_a")), {C});
        f32(blk(i, "time_mix_r_k"), weight(w, att(i, "r_k")), {C}); // [H, N] row-major is ggml's [N, H]
        for (auto [from, to] : {std::pair{"key", "time_mix_key"}, {"value", "time_mix_value"},
                                {"receptance", "time_mix_receptance"}, {"output", "time_mix_output"}})
            matrix(blk(i, to), weight(w, att(i, from) + ".weight"));
        f32(blk(i, "channel_mix_lerp_k"), weight(w, b + "ffn.x_k"), {1, 1, C});
        matrix(blk(i, "channel_mix_key"), weight(w, b + "ffn.key.weight"));
        matrix(blk(i, "channel_mix_value"), weight(w, b + "ffn.value.weight"));
    }
}

std::string export_gguf(const LoadedCheckpoint &c, const std::string &path, const GgufExportOptions &o) {
    if (o.dtype != "float32" && o.dtype != "float16")
        throw Error("export: --dtype must be f32 or f16 for gguf, got '" + o.dtype + "'");
    const NamedWeights weights = named_weights(*c.model);
    const Rwkv7Dims dims = dense_rwkv7_dims(c.model->spec(), weights, "gguf (llama.cpp rwkv7)");
    // llama.cpp's CUDA wkv7 kernel asserts these two; its AVX-512 CPU kernel
    // steps 64 lanes at a time with no tail, so a 32-wide head loads and
    // overwrites its neighbour's state and gives wrong logits without an error.
    if (dims.head_size != 64 && dims.head_size != 128)
        throw Error("cannot export to gguf (llama.cpp rwkv7): the head size is " + std::to_string(dims.head_size) +
                    "; llama.cpp's rwkv7 kernels compute head sizes 64 and 128 only (mixer.head_size)");
    const std::vector<std::string> tokens = rwkv_token_list(*c.tokenizer, dims.vocab);
    GgufWriter out;
    out.add_string("general.name", c.model->spec().name);
    add_rwkv7_gguf(out, dims, weights, o.dtype == "float16");
    out.add_string("tokenizer.ggml.model", "rwkv");
    out.add_string_array("tokenizer.ggml.tokens", tokens);
    std::vector<int32_t> types(tokens.size(), kTokenNormal);
    std::fill(types.begin() + c.tokenizer->vocab_size(), types.end(), kTokenUnused);
    out.add_int32_array("tokenizer.ggml.token_type", types);
    out.write(path);
    return "wrote " + path + " (llama.cpp rwkv7, " + o.dtype + ", " +
           std::to_string(std::filesystem::file_size(path)) + " bytes)";
}

} // namespace cdrmix
