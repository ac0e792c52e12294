// cdrmix::Error: the one exception type for errors a user can cause (bad config,
// missing file, unknown plugin). Its message is one line that names the cause.
#pragma once

#include <stdexcept>
#include <string>

namespace cdrmix {

class Error : public std::runtime_error {
public:
    explicit Error(const std::string &message) : std::runtime_error(message) {}
};

} // namespace cdrmix
