#include "interop/fla_names.hpp"

#include <regex>
#include <vector>

namespace cdrmix {

namespace {

struct NamePair {
    const char *fla, *rwkv_lm;
    bool flat = false;
};

// Outside the layers.
const std::vector<NamePair> kOuter = {{"model.embeddings.weight", "emb.weight"},
                                      {"model.norm.weight", "ln_out.weight"},
                                      {"model.norm.bias", "ln_out.bias"},
                                      {"lm_head.weight", "head.weight"}};

// Inside model.layers.N. / blocks.N.
const std::vector<NamePair> kLayer = {
    {"pre_norm.weight", "ln0.weight"},           {"pre_norm.bias", "ln0.bias"},
    {"attn_norm.weight", "ln1.weight"},          {"attn_norm.bias", "ln1.bias"},
    {"ffn_norm.weight", "ln2.weight"},           {"ffn_norm.bias", "ln2.bias"},
    {"attn.r_proj.weight", "att.receptance.weight"}, {"attn.k_proj.weight", "att.key.weight"},
    {"attn.v_proj.weight", "att.value.weight"},  {"attn.o_proj.weight", "att.output.weight"},
    {"attn.g_norm.weight", "att.ln_x.weight"},   {"attn.g_norm.bias", "att.ln_x.bias"},
    {"attn.x_r", "att.x_r"},                     {"attn.x_w", "att.x_w"},
    {"attn.x_k", "att.x_k"},                     {"attn.x_v", "att.x_v"},
    {"attn.x_a", "att.x_a"},                     {"attn.x_g", "att.x_g"},
    {"attn.k_k", "att.k_k", true},               {"attn.k_a", "att.k_a", true},
    {"attn.r_k", "att.r_k"},                     {"ffn.x_k", "ffn.x_k", true},
    {"ffn.key.weight", "ffn.key.weight"},        {"ffn.value.weight", "ffn.value.weight"}};

// fla's LoRA is Sequential(Linear(C, D), activation, Linear(D, C[, bias])): lora.0's weight is
// RWKV-LM's X1 transposed, lora.2's weight its X2 transposed, lora.2's bias its X0, flat.
struct LoraPart {
    const char *fla, *digit;
    bool transposed, flat;
};
const std::vector<LoraPart> kLoraParts = {{"0.weight", "1", true, false},
                                          {"2.weight", "2", true, false},
                                          {"2.bias", "0", false, true}};

} // namespace

std::optional<FlaMapped> fla_to_rwkv_lm(const std::string &name) {
    static const std::regex layered(R"(model\.layers\.(\d{1,4})\.(.+))");
    static const std::regex lora(R"(attn\.([wavg])_lora\.lora\.(.+))");
    for (const NamePair &p : kOuter)
        if (name == p.fla) return FlaMapped{p.rwkv_lm, false, p.flat};
    std::smatch m, l;
    if (!std::regex_match(name, m, layered)) return std::nullopt;
    const std::string prefix = "blocks." + m[1].str() + ".", rest = m[2].str();
    for (const NamePair &p : kLayer)
        if (rest == p.fla) return FlaMapped{prefix + p.rwkv_lm, false, p.flat};
    if (!std::regex_match(rest, l, lora)) return std::nullopt;
    for (const LoraPart &p : kLoraParts)
        if (l[2].str() == p.fla) return FlaMapped{prefix + "att." + l[1].str() + p.digit, p.transposed, p.flat};
    return std::nullopt;
}

std::optional<FlaMapped> rwkv_lm_to_fla(const std::string &name) {
    static const std::regex layered(R"(blocks\.(\d{1,4})\.(.+))");
    static const std::regex lora(R"(att\.([wavg])([012]))");
    for (const NamePair &p : kOuter)
        if (name == p.rwkv_lm) return FlaMapped{p.fla, false, p.flat};
    std::smatch m, l;
    if (!std::regex_match(name, m, layered)) return std::nullopt;
    const std::string prefix = "model.layers." + m[1].str() + ".", rest = m[2].str();
    for (const NamePair &p : kLayer)
        if (rest == p.rwkv_lm) return FlaMapped{prefix + p.fla, false, p.flat};
    if (!std::regex_match(rest, l, lora)) return std::nullopt;
    for (const LoraPart &p : kLoraParts)
        if (l[2].str() == p.digit)
            return FlaMapped{prefix + "attn." + l[1].str() + "_lora.lora." + p.fla, p.transposed, p.flat};
    return std::nullopt;
}

} // namespace cdrmix
