#include <cdrmix/block.hpp>
#include <cdrmix/error.hpp>

namespace cdrmix {

torch::Tensor Block::forward_tokens(const torch::Tensor &) {
    throw Error("block '" + name() + "' is not token-wise, so it cannot be an MoE expert");
}

} // namespace cdrmix
