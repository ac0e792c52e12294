#include "model/sampler.hpp"

#include <cdrmix/error.hpp>

#include <torch/torch.h>

namespace cdrmix {

namespace {

// True when s does not end inside a multi-byte UTF-8 sequence.
bool utf8_complete(const std::string &s) {
    for (size_t back = 1; back <= std::min<size_t>(4, s.size()); ++back) {
        const unsigned char c = static_cast<unsigned char>(s[s.size() - back]);
        if ((c & 0xc0) == 0x80) continue; // continuation byte: keep looking for the lead
        size_t need = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 1;
        return back >= need;
    }
    return true;
}

} // namespace

int64_t sample_token(const torch::Tensor &logits_in, const SampleOptions &opts, torch::Generator &gen) {
    torch::Tensor logits = logits_in.to(torch::kFloat32).reshape({-1});
    if (opts.temperature <= 0) return logits.argmax().item<int64_t>();
    logits = logits / opts.temperature;
    if (opts.top_k > 0 && opts.top_k < logits.size(0)) {
        torch::Tensor kth = std::get<0>(logits.topk(opts.top_k)).select(0, opts.top_k - 1);
        logits = logits.masked_fill(logits < kth, -std::numeric_limits<float>::infinity());
    }
    torch::Tensor probs = torch::softmax(logits, 0);
    if (opts.top_p < 1.0) {
        auto [sorted, idx] = probs.sort(0, /*descending=*/true);
        torch::Tensor cum = sorted.cumsum(0);
        // Keep the smallest prefix whose mass reaches top_p (always at least one token).
        torch::Tensor drop = (cum - sorted) >= opts.top_p;
        sorted = sorted.masked_fill(drop, 0);
        probs = torch::zeros_like(probs).scatter(0, idx, sorted);
    }
    return torch::multinomial(probs, 1, false, gen).item<int64_t>();
}

std::string generate(Model &model, const Tokenizer &tokenizer, const std::string &prompt, const SampleOptions &opts,
                     const std::function<void(const std::string &)> &on_text) {
    return generate_until(model, tokenizer, prompt, opts, [&](const std::string &piece) {
        if (on_text) on_text(piece);
        return true;
    });
}

Decoder::Decoder(Model &model) : model_(model), was_training_(model.is_training()) { model_.eval(); }

Decoder::~Decoder() { model_.train(was_training_); }

namespace {

// The last position's logits [V], where sampling runs: on the CPU (its generator
// is seeded there), whatever the model's device.
torch::Tensor last_logits(const torch::Tensor &logits) {
    return logits.select(1, logits.size(1) - 1).squeeze(0).to(torch::kCPU);
}

} // namespace

torch::Tensor Decoder::prefill(const std::vector<int64_t> &ids) {
    torch::NoGradGuard no_grad;
    ForwardContext ctx;
    return last_logits(model_.forward(torch::tensor(ids, torch::kInt64).unsqueeze(0), &state_, ctx));
}

torch::Tensor Decoder::step(int64_t id) {
    torch::NoGradGuard no_grad;
    ForwardContext ctx;
    ctx.decoding = true;
    return last_logits(model_.forward(torch::tensor({id}, torch::kInt64).unsqueeze(0), &state_, ctx));
}

std::string generate_until(Model &model, const Tokenizer &tokenizer, const std::string &prompt,
                           const SampleOptions &opts, const std::function<bool(const std::string &)> &on_text) {
    std::vector<int64_t> ids = tokenizer.encode(prompt);
    if (ids.empty()) throw Error("generate: the prompt is empty; give at least one character");
    torch::Generator gen = at::detail::createCPUGenerator(opts.seed);
    auto stopped_by = [&](const std::string &text) {
        for (const auto &s : opts.stop)
            if (!s.empty() && text.find(s) != std::string::npos) return true;
        return false;
    };

    Decoder decoder(model);
    torch::Tensor logits = decoder.prefill(ids);
    std::string out;
    std::vector<int64_t> pending_ids;
    for (int64_t i = 0; i < opts.max_tokens; ++i) {
        const int64_t next = sample_token(logits, opts, gen);
        pending_ids.push_back(next);
        std::string piece = tokenizer.decode(pending_ids);
        if (utf8_complete(piece)) {
            out += piece;
            pending_ids.clear();
            const bool more = !on_text || on_text(piece);
            if (!more || stopped_by(out)) break;
        }
        if (i + 1 == opts.max_tokens) break; // the last token needs no forward pass
        logits = decoder.step(next);
    }
    return out;
}

} // namespace cdrmix
