// Block contract: a torch::nn::Module mapping hidden states [B,T,C] to [B,T,C],
// optionally carrying a recurrent state so a sequence can be processed in pieces
// (streaming) with the same result as processing it whole.
//
// Threads: a block belongs to one model and is called from one thread at a
// time; forward() may use LibTorch's intra-op thread pool. Ownership: the model
// owns its blocks; a state vector belongs to the caller, the block only
// reads and overwrites it. Errors: factories throw cdrmix::Error for bad
// configuration; forward() throws c10::Error for malformed input.
#pragma once

#include <cdrmix/router.hpp>

#include <torch/nn/module.h>

#include <cstdint>
#include <string>
#include <vector>

namespace cdrmix {

class Registry;
class ExpertGroup;

// A block's recurrent state: an ordered list of tensors the block defines.
// Empty means "start of sequence".
using BlockState = std::vector<torch::Tensor>;

// What the model tells a block factory about where the block sits.
struct BlockContext {
    int64_t hidden_size = 0;
    int64_t layer = 0;      // 0-based layer index
    int64_t num_layers = 1;
    // Built as an MoE expert: only forward_tokens is used, and the MoE layer owns
    // anything sequence-level (such as RWKV's token shift).
    bool expert = false;
    // The registry creating this block (set by Registry::create_block): a block
    // that builds further blocks or routers (an MoE layer) builds them here.
    const Registry *registry = nullptr;
    // Set when the model runs expert-parallel (expert_group.hpp): an MoE layer
    // keeps only its share of the experts and exchanges tokens through it. Null otherwise.
    ExpertGroup *expert_group = nullptr;
};

// Per-forward scratch shared by all blocks of one model call.
struct ForwardContext {
    // The model's input tokens [B,T] (hash routing reads them), or undefined.
    torch::Tensor token_ids;
    // Set while generating token by token with carried state.
    bool decoding = false;
    // RWKV-7 value residual: layer 0's values, read by later layers.
    torch::Tensor v_first;
    // Auxiliary losses added to the training objective, e.g. "layer1.load_balance".
    std::vector<NamedLoss> aux_losses;
    // Set by the caller on steps whose routing statistics are logged: MoE
    // layers then append their decisions to `routing` (otherwise they record nothing).
    bool record_routing = false;
    std::vector<RoutingRecord> routing;
    int64_t layer = 0;
};

class Block : public torch::nn::Module {
public:
    // x: [B,T,C]. state: nullptr for a stateless call; otherwise read as the
    // initial state (empty = zeros) and overwritten with the final state.
    virtual torch::Tensor forward(const torch::Tensor &x, BlockState *state, ForwardContext &ctx) = 0;

    // Token-wise blocks (feed-forward networks) can serve as MoE experts: they
    // map [N,C] to [N,C] with no dependence on neighbouring tokens.
    virtual bool tokenwise() const { return false; }
    virtual torch::Tensor forward_tokens(const torch::Tensor &x);

    // For `cdrmix describe`: the parameters one token actually uses (an MoE layer
    // counts its router, shared experts and top_k routed experts), and the size of
    // one routed expert (0 when the block has none).
    virtual int64_t active_parameters() const;
    virtual int64_t expert_parameters() const { return 0; }
};

} // namespace cdrmix
