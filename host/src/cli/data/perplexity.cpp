#include "cli/data/perplexity.hpp"

#include "train/checkpoint.hpp"

#include <cdrmix/error.hpp>
#include <cdrmix/registry.hpp>

#include <torch/torch.h>

#include <cmath>
#include <limits>

namespace cdrmix {

namespace {

int64_t run_seq_len(const LoadedCheckpoint &c) {
    const Json &s = c.trainer_state;
    if (s.is_object() && s.contains("train") && s["train"].is_object() && s["train"].contains("seq_len") &&
        s["train"]["seq_len"].is_number_integer())
        return std::max<int64_t>(1, s["train"]["seq_len"].get<int64_t>());
    return 256;
}

} // namespace

CheckpointPerplexity::CheckpointPerplexity(const std::string &dir, int64_t seq_len)
    : ckpt_(std::make_unique<LoadedCheckpoint>(load_checkpoint(resolve_checkpoint(dir), Registry::global()))),
      seq_len_(seq_len > 0 ? seq_len : run_seq_len(*ckpt_)) {
    ckpt_->model->eval();
}

CheckpointPerplexity::~CheckpointPerplexity() = default;

const std::string &CheckpointPerplexity::dir() const { return ckpt_->dir; }

double CheckpointPerplexity::operator()(const std::string &text) const {
    const std::vector<int64_t> ids = ckpt_->tokenizer->encode(text);
    const auto n = static_cast<int64_t>(ids.size());
    if (n < 2) return std::numeric_limits<double>::quiet_NaN();
    torch::NoGradGuard no_grad;
    const torch::Tensor all = torch::tensor(ids, torch::kInt64);
    double sum = 0;
    for (int64_t start = 0; start + 1 < n; start += seq_len_) {
        const int64_t end = std::min(n, start + seq_len_ + 1);
        const torch::Tensor window = all.slice(0, start, end).unsqueeze(0);
        // loss() is a mean over the window's end - start - 1 predictions.
        sum += ckpt_->model->loss(window).ce.item<double>() * double(end - start - 1);
    }
    return std::exp(sum / double(n - 1));
}

} // namespace cdrmix
