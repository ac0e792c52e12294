#include "model/norm.hpp"

#include <cdrmix/error.hpp>

#include <torch/torch.h>

namespace cdrmix {

NormImpl::NormImpl(const std::string &kind, int64_t dim, double eps) : rms_(kind == "rmsnorm"), dim_(dim), eps_(eps) {
    if (kind != "layernorm" && kind != "rmsnorm")
        throw Error("model: key 'norm' must be \"layernorm\" or \"rmsnorm\", got \"" + kind + "\"");
    weight = register_parameter("weight", torch::ones({dim}));
    if (!rms_) bias = register_parameter("bias", torch::zeros({dim}));
}

torch::Tensor NormImpl::forward(const torch::Tensor &x) {
    if (!rms_) return torch::layer_norm(x, {dim_}, weight, bias, eps_);
    return x * torch::rsqrt(x.pow(2).mean(-1, true) + eps_) * weight;
}

} // namespace cdrmix
