// LibTorch's AdamW with its step fused into one pass over all parameters.
//
// torch::optim::AdamW runs about eight tensor operations per parameter (decay,
// two moment updates, sqrt, divide, add, addcdiv), each a dispatcher call and a
// separate sweep over memory; a small model spends more time in that overhead
// than in the arithmetic. Here one parallel loop walks every parameter's
// elements once and does the whole update in registers (a "multi-tensor apply").
// The arithmetic is AdamW's, in the parameter's dtype; the state (exp_avg,
// exp_avg_sq and step per parameter), the options, the parameter groups and
// the serialised form are AdamW's own, so optimizer.pt files move between the
// two unchanged. Parameters that are not contiguous float32/float64 CPU tensors
// (a GPU model) take LibTorch's per-parameter step.
#pragma once

#include <torch/optim/adamw.h>

#include <functional>
#include <vector>

namespace cdrmix {

class FusedAdamW : public torch::optim::AdamW {
public:
    // As AdamW; amsgrad is refused (the trainer never asks for it).
    FusedAdamW(std::vector<torch::optim::OptimizerParamGroup> param_groups, torch::optim::AdamWOptions defaults);

    torch::Tensor step(LossClosure closure = nullptr) override;
};

// torch::nn::utils::clip_grad_norm_ in two passes over all gradients instead
// of three operations per parameter: returns the global L2 norm of the defined
// gradients (summed in double) and, with max_norm > 0, scales them by
// max_norm / (norm + 1e-6) when that is below 1.
double clip_grad_norm(const std::vector<torch::Tensor> &params, double max_norm);
// The same for gradients the ranks of a group divide between them: `whole`
// are parameters each rank holds alike, `share` this rank's share of the
// others; sum_over_group adds the share's sum of squares over the group, so
// every rank gets the norm of the whole gradient.
double clip_grad_norm(const std::vector<torch::Tensor> &whole, const std::vector<torch::Tensor> &share,
                      const std::function<double(double)> &sum_over_group, double max_norm);

// The state a LibTorch optimiser keeps for parameter `p`, or null before its
// first step (hides how LibTorch 1.x and 2.x key it).
torch::optim::OptimizerParamState *param_state(torch::optim::Optimizer &optimizer, const torch::Tensor &p);
// AdamW's state for `p`: found, or made with zero moments at step 0.
torch::optim::AdamWParamState &adamw_state(torch::optim::Optimizer &optimizer, const torch::Tensor &p);
// Forgets the state of `p` (a parameter another rank updates, optimizer_shards.hpp).
void erase_param_state(torch::optim::Optimizer &optimizer, const torch::Tensor &p);

} // namespace cdrmix
