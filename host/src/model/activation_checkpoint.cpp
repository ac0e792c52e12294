#include "model/activation_checkpoint.hpp"

#include "model/model.hpp"
#include "train/autocast.hpp"

#include <cdrmix/error.hpp>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/torch.h>

#include <mutex>
#include <optional>

namespace cdrmix {

ActivationCheckpointing ActivationCheckpointing::parse(const std::string &mode, int64_t every,
                                                       const std::string &where) {
    ActivationCheckpointing c;
    if (mode == "none") c.mode = Mode::None;
    else if (mode == "all") c.mode = Mode::All;
    else if (mode == "every_k") c.mode = Mode::EveryK;
    else
        throw Error(where + ": key 'checkpoint_activations' must be \"none\", \"all\" or \"every_k\", got \"" + mode +
                    "\"");
    if (every < 1)
        throw Error(where + ": key 'checkpoint_activations_every' must be at least 1, got " + std::to_string(every));
    c.every = every;
    return c;
}

std::string ActivationCheckpointing::name() const {
    switch (mode) {
    case Mode::All: return "all";
    case Mode::EveryK: return "every_k";
    case Mode::None: break;
    }
    return "none";
}

bool ActivationCheckpointing::applies(int64_t layer) const {
    return mode == Mode::All || (mode == Mode::EveryK && layer % every == 0);
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The generators a layer may draw from (dropout, router jitter): the default
// CPU one and, for a CUDA model, its device's.
struct GeneratorStates {
    std::vector<std::pair<at::Generator, torch::Tensor>> saved;

    static GeneratorStates capture(const c10::Device &device) {
        std::vector<at::Generator> gens{at::detail::getDefaultCPUGenerator()};
        if (device.is_cuda()) gens.push_back(at::globalContext().defaultGenerator(device));
        GeneratorStates s;
        for (auto &g : gens) {
            std::lock_guard<std::mutex> lock(g.mutex());
            s.saved.emplace_back(g, g.get_state());
        }
        return s;
    }
    void restore() const {
        for (const auto &[gen, state] : saved) {
            at::Generator g = gen;
            std::lock_guard<std::mutex> lock(g.mutex());
            g.set_state(state);
        }
    }
};

// A buffer the first pass changed in place, and its value before that pass.
struct ChangedBuffer {
    torch::Tensor buffer, before;
};

// What one checkpointed call carries from its forward to its backward.
struct LayerCall : torch::CustomClassHolder {
    std::shared_ptr<Layer> layer;
    ForwardContext base; // token ids and layer index, as the first pass saw them
    bool record_routing = false;
    bool autocast = false;
    GeneratorStates generators;
    std::vector<ChangedBuffer> changed;
    // The first pass's outputs beyond the layer's result, in the node's output order.
    bool sets_v_first = false;
    std::vector<std::string> aux_names;
    std::vector<RoutingRecord> routing; // handed to the caller's context once
};

// Sets the generators and changed buffers back to the first pass's view for
// one recomputation, and forward again when it ends (also by an exception).
class ReplayScope {
public:
    ReplayScope(const LayerCall &call, const c10::Device &device) : call_(call), now_(GeneratorStates::capture(device)) {
        torch::NoGradGuard no_grad;
        for (const auto &c : call_.changed) after_.push_back(c.buffer.clone());
        for (const auto &c : call_.changed) c.buffer.copy_(c.before);
        call_.generators.restore();
        if (call_.autocast) autocast_.emplace("bf16", "activation checkpointing", device.type());
    }
    ~ReplayScope() {
        autocast_.reset();
        now_.restore();
        torch::NoGradGuard no_grad;
        for (size_t i = 0; i < after_.size(); ++i) call_.changed[i].buffer.copy_(after_[i]);
    }
    ReplayScope(const ReplayScope &) = delete;
    ReplayScope &operator=(const ReplayScope &) = delete;

private:
    const LayerCall &call_;
    GeneratorStates now_;
    std::vector<torch::Tensor> after_;
    std::optional<AutocastGuard> autocast_;
};

// The layer's result, then v_first when the layer set it, then its auxiliary losses.
variable_list outputs_of(const torch::Tensor &y, const torch::Tensor &v_first_in, const ForwardContext &local) {
    variable_list out{y};
    const bool sets_v_first = local.v_first.defined() && !local.v_first.is_same(v_first_in);
    if (sets_v_first) out.push_back(local.v_first);
    for (const auto &l : local.aux_losses) out.push_back(l.value);
    return out;
}

struct CheckpointFunction : torch::autograd::Function<CheckpointFunction> {
    // params: the layer's parameters, inputs of the node so their gradients
    // reach the optimiser through the ordinary graph (and its hooks).
    static variable_list forward(AutogradContext *ctx, const torch::Tensor &x, const c10::optional<torch::Tensor> &v_first,
                                 at::TensorList params, const c10::intrusive_ptr<LayerCall> &call) {
        (void)params;
        const torch::Tensor v_in = v_first.value_or(torch::Tensor());
        call->generators = GeneratorStates::capture(x.device());
        std::vector<std::pair<torch::Tensor, int64_t>> versions;
        std::vector<torch::Tensor> before;
        for (const auto &b : call->layer->buffers()) {
            versions.emplace_back(b, b._version());
            before.push_back(b.clone());
        }
        ForwardContext local = call->base;
        local.v_first = v_in;
        local.record_routing = call->record_routing;
        const torch::Tensor y = call->layer->forward(x, nullptr, nullptr, local);
        for (size_t i = 0; i < versions.size(); ++i)
            if (versions[i].first._version() != versions[i].second) call->changed.push_back({versions[i].first, before[i]});
        variable_list out = outputs_of(y, v_in, local);
        call->sets_v_first = out.size() > 1 + local.aux_losses.size();
        for (const auto &l : local.aux_losses) call->aux_names.push_back(l.name);
        call->routing = std::move(local.routing);
        ctx->save_for_backward({x, v_in});
        ctx->saved_data["call"] = c10::IValue::make_capsule(call);
        return out;
    }

    static variable_list backward(AutogradContext *ctx, variable_list grads) {
        const c10::intrusive_ptr<torch::CustomClassHolder> holder = ctx->saved_data["call"].toCapsule();
        LayerCall *call = static_cast<LayerCall *>(holder.get()); // the capsule holds only LayerCalls
        const variable_list saved = ctx->get_saved_variables();
        const torch::Tensor x = saved[0].detach().requires_grad_(saved[0].requires_grad());
        const torch::Tensor v_in =
            saved[1].defined() ? saved[1].detach().requires_grad_(saved[1].requires_grad()) : torch::Tensor();

        torch::AutoGradMode with_grad(true);
        ForwardContext local = call->base;
        local.v_first = v_in;
        variable_list out;
        {
            ReplayScope replay(*call, x.device());
            const torch::Tensor y = call->layer->forward(x, nullptr, nullptr, local);
            out = outputs_of(y, v_in, local);
        }
        std::vector<std::string> names;
        for (const auto &l : local.aux_losses) names.push_back(l.name);
        TORCH_CHECK(names == call->aux_names && (out.size() > 1 + names.size()) == call->sets_v_first,
                    "activation checkpointing: layer ", call->base.layer,
                    " published other outputs when recomputed than in its forward pass");

        variable_list roots, root_grads;
        for (size_t i = 0; i < out.size(); ++i)
            if (out[i].requires_grad()) {
                roots.push_back(out[i]);
                root_grads.push_back(grads[i]);
            }
        // One gradient slot per forward argument: x, v_first, each parameter, the call.
        const std::vector<torch::Tensor> params = call->layer->parameters();
        variable_list result(2 + params.size() + 1);
        variable_list wrt;
        std::vector<size_t> slot;
        auto want = [&](const torch::Tensor &t, size_t i) {
            if (t.defined() && t.requires_grad()) {
                wrt.push_back(t);
                slot.push_back(i);
            }
        };
        want(x, 0);
        want(v_in, 1);
        for (size_t i = 0; i < params.size(); ++i) want(params[i], 2 + i);
        if (roots.empty() || wrt.empty()) return result;
        const variable_list g = torch::autograd::grad(roots, wrt, root_grads, /*retain_graph=*/false,
                                                      /*create_graph=*/false, /*allow_unused=*/true);
        for (size_t i = 0; i < g.size(); ++i) result[slot[i]] = g[i];
        return result;
    }
};

} // namespace

torch::Tensor checkpointed_layer_forward(const std::shared_ptr<Layer> &layer, const torch::Tensor &x,
                                         ForwardContext &ctx) {
    auto call = c10::make_intrusive<LayerCall>();
    call->layer = layer;
    call->base.token_ids = ctx.token_ids;
    call->base.decoding = ctx.decoding;
    call->base.layer = ctx.layer;
    call->record_routing = ctx.record_routing;
    call->autocast = AutocastGuard::enabled(x.device().type());
    const std::vector<torch::Tensor> params = layer->parameters();
    const c10::optional<torch::Tensor> v_first =
        ctx.v_first.defined() ? c10::optional<torch::Tensor>(ctx.v_first) : c10::nullopt;
    const variable_list out = CheckpointFunction::apply(x, v_first, at::TensorList(params), call);
    size_t next = 1;
    if (call->sets_v_first) ctx.v_first = out[next++];
    for (const auto &name : call->aux_names) ctx.aux_losses.push_back({name, out[next++]});
    for (auto &r : call->routing) ctx.routing.push_back(std::move(r));
    call->routing.clear();
    return out[0];
}

} // namespace cdrmix
