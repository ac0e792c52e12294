#include <cdrmix/backend.hpp>

#include <ATen/core/dispatch/Dispatcher.h>

namespace cdrmix {

std::vector<std::string> ops_with_kernel(c10::DispatchKey key) {
    std::vector<std::string> out;
    for (const auto &op : c10::Dispatcher::singleton().getAllOpNames()) {
        if (op.name.rfind("cdrmix::", 0) != 0) continue;
        auto handle = c10::Dispatcher::singleton().findOp(op);
        if (handle && handle->hasKernelForDispatchKey(key)) out.push_back(op.name);
    }
    return out;
}

} // namespace cdrmix
