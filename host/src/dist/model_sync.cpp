#include "dist/model_sync.hpp"

#include "train/fused_adamw.hpp"

#include <torch/torch.h>

namespace cdrmix {

ModelSync::ModelSync(ProcessGroup &world, const torch::nn::Module &model, ExpertParallel *experts)
    : experts_(experts) {
    dense_.group = &world;
    if (experts) held_.group = &experts->replicas();
    auto place = [&](const std::string &name, const torch::Tensor &t, bool parameter) {
        Part &part = experts && experts->holds(t) ? held_ : dense_;
        part.tensors.push_back(t);
        part.names.push_back(name);
        if (parameter && t.requires_grad()) part.trainable.push_back(t);
    };
    for (const auto &p : model.named_parameters()) place(p.key(), p.value(), true);
    for (const auto &b : model.named_buffers()) place(b.key(), b.value(), false);
    dense_.sync = std::make_unique<GradientSync>(world, dense_.trainable);
    if (held_.group && !held_.trainable.empty()) {
        held_.sync = std::make_unique<GradientSync>(*held_.group, held_.trainable, double(world.world_size()));
        dense_.sync->lead(*held_.sync);
    }
}

double ModelSync::clip_grad_norm(double max_norm) {
    if (!experts_) return cdrmix::clip_grad_norm(dense_.trainable, max_norm);
    // Each expert once: its share's squares summed over the expert group.
    return cdrmix::clip_grad_norm(dense_.trainable, held_.trainable, [this](double squares) {
        torch::Tensor t = torch::tensor({squares}, torch::kFloat64);
        experts_->experts().all_reduce(t, ReduceOp::Sum);
        return t.item<double>();
    }, max_norm);
}

void ModelSync::set_enabled(bool enabled) {
    dense_.sync->set_enabled(enabled);
    if (held_.sync) held_.sync->set_enabled(enabled);
}

double ModelSync::last_wait_s() const {
    return dense_.sync->last_wait_s() + (held_.sync ? held_.sync->last_wait_s() : 0.0);
}

void ModelSync::broadcast() {
    broadcast_tensors(*dense_.group, dense_.tensors, 0);
    if (held_.group) broadcast_tensors(*held_.group, held_.tensors, 0);
}

void ModelSync::check_equal(const std::string &what) {
    check_tensors_equal(*dense_.group, dense_.tensors, dense_.names, what);
    if (held_.group) check_tensors_equal(*held_.group, held_.tensors, held_.names, what);
}

} // namespace cdrmix
