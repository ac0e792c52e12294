// cdrmix-plugin-probe FILE...: loads each plugin file as the host would, in
// this throwaway process, announcing each on descriptor 3 (core/plugin_probe.hpp).
#include "core/plugin_loader.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

void announce(const char *what, int index) {
    const std::string line = std::string(what) + " " + std::to_string(index) + "\n";
    if (write(3, line.data(), line.size()) < 0) std::_Exit(2); // nobody is listening
}

} // namespace

int main(int argc, char **argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: cdrmix-plugin-probe FILE... (run by cdrmix; reports on descriptor 3)\n");
        return 2;
    }
    cdrmix::Registry registry;
    cdrmix::PluginLoader loader(registry, std::nullopt);
    for (int i = 1; i < argc; ++i) {
        announce("begin", i - 1);
        try {
            loader.load_file(argv[i]); // a refusal is the host's to report; only surviving matters here
        } catch (...) {
        }
        announce("end", i - 1);
    }
    // No static destructors: a plugin's could crash after every file was reported.
    std::_Exit(0);
}
