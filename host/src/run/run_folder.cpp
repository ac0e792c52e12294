#include "run/run_folder.hpp"

#include <regex>

namespace cdrmix {

namespace run_folder {

std::string make(const std::string &name, std::time_t when, int attempt) {
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::localtime(&when));
    return name + "-" + stamp + (attempt > 1 ? "-" + std::to_string(attempt) : "");
}

bool is_run_of(const std::string &folder, const std::string &name) {
    static const std::regex stamp(R"(\d{8}-\d{6}(-\d+)?)");
    return folder.size() > name.size() + 1 && folder.compare(0, name.size() + 1, name + "-") == 0 &&
           std::regex_match(folder.substr(name.size() + 1), stamp);
}

} // namespace run_folder

} // namespace cdrmix
