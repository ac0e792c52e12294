// The model's normalisation layers: LayerNorm (RWKV-LM's choice) or RMSNorm
// (LLaMA / TardBot / Oxidizr), chosen per model. Parameters are named as
// torch::nn::LayerNorm names them (weight, bias), so checkpoints keep RWKV-LM names.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <string>

namespace cdrmix {

class NormImpl : public torch::nn::Module {
public:
    // kind: "layernorm" or "rmsnorm"
    NormImpl(const std::string &kind, int64_t dim, double eps);
    torch::Tensor forward(const torch::Tensor &x);

private:
    bool rms_;
    int64_t dim_;
    double eps_;
    torch::Tensor weight, bias;
};
TORCH_MODULE(Norm);

} // namespace cdrmix
