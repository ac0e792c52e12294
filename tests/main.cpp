// Test entry point: loads the in-tree plugins (build/plugins) into the global
// registry once, as the host does, then runs every suite.
#include "core/plugin_loader.hpp"
#include "lua/lua_modules.hpp"

#include <gtest/gtest.h>

#include <execinfo.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>

namespace {

// A crashing test prints its stack (binary+offset frames, for addr2line) before
// dying, so a crash on a machine without a debugger can still be located.
void print_stack_and_die(int sig) {
    static const char header[] = "\nfatal signal in a test; stack:\n";
    (void)!::write(STDERR_FILENO, header, sizeof header - 1);
    void *frames[64];
    ::backtrace_symbols_fd(frames, ::backtrace(frames, 64), STDERR_FILENO);
    std::signal(sig, SIG_DFL);
    std::raise(sig);
}

} // namespace

int main(int argc, char **argv) {
    for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) std::signal(sig, print_stack_and_die);
    // Before InitGoogleTest: the contract suites are instantiated over what is registered.
    cdrmix::lua::register_lua_modules(cdrmix::Registry::global());
    cdrmix::PluginLoader loader(cdrmix::Registry::global());
    loader.load_all(cdrmix::PluginLoader::search_path({}));
    for (const auto &p : loader.problems()) std::fprintf(stderr, "plugin problem: %s\n", p.message.c_str());
    if (!loader.problems().empty()) return 1;
    ::testing::InitGoogleTest(&argc, argv);
    return RUN_ALL_TESTS();
}
