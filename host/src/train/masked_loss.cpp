#include "train/masked_loss.hpp"

#include <cdrmix/error.hpp>

#include <torch/torch.h>

namespace cdrmix {

LossOutput masked_loss(Model &model, const torch::Tensor &batch, const torch::Tensor &mask, bool record_routing) {
    if (!mask.defined()) return model.loss(batch, record_routing);
    TORCH_CHECK(batch.dim() == 2 && batch.size(1) >= 2, "masked_loss: batch must be [B,T+1], got ", batch.sizes());
    const int64_t T = batch.size(1) - 1;
    if (mask.dim() != 2 || mask.size(0) != batch.size(0) || mask.size(1) != T)
        throw Error("masked_loss: the loss mask is " + std::to_string(mask.dim() == 2 ? mask.size(0) : -1) + " x " +
                    std::to_string(mask.dim() == 2 ? mask.size(1) : -1) + ", the batch's targets " +
                    std::to_string(batch.size(0)) + " x " + std::to_string(T));
    ForwardContext ctx;
    ctx.record_routing = record_routing;
    const torch::Tensor on_device = batch.to(model.device());
    const torch::Tensor keep = mask.to(model.device(), torch::kFloat32).reshape({-1});
    const torch::Tensor logits = model.forward(on_device.slice(1, 0, T), nullptr, ctx);
    const torch::Tensor per_token = torch::nn::functional::cross_entropy(
        logits.reshape({-1, logits.size(-1)}).to(torch::kFloat32), on_device.slice(1, 1, T + 1).reshape({-1}),
        torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
    LossOutput out;
    // clamp_min: a batch with no kept target gives 0 / 1 rather than 0 / 0.
    out.ce = (per_token * keep).sum() / keep.sum().clamp_min(1);
    out.total = out.ce;
    for (const auto &l : ctx.aux_losses) out.total = out.total + l.value;
    out.aux = std::move(ctx.aux_losses);
    out.routing = std::move(ctx.routing);
    return out;
}

int64_t loss_token_count(const torch::Tensor &batch, const torch::Tensor &mask) {
    if (!mask.defined()) return batch.size(0) * (batch.size(1) - 1);
    return static_cast<int64_t>(mask.sum().item<double>());
}

} // namespace cdrmix
