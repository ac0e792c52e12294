#include <cdrmix/block.hpp>
#include <cdrmix/error.hpp>

namespace cdrmix {

torch::Tensor Block::forward_tokens(const torch::Tensor &) {
    throw Error("block '" + name() + "' is not token-wise, so it cannot be an MoE expert");
}

int64_t Block::active_parameters() const {
    int64_t n = 0;
    for (const auto &p : parameters()) n += p.numel();
    return n;
}

} // namespace cdrmix
