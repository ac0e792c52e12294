#include "cli/commands.hpp"

int main(int argc, char **argv) { return cdrmix::cli_main(argc, argv); }
