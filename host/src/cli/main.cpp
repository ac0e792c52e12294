#include "cli/commands.hpp"
#include "core/system_info.hpp"

int main(int argc, char **argv) {
    cdrmix::restart_with_passive_openmp_wait(argv);
    return cdrmix::cli_main(argc, argv);
}
