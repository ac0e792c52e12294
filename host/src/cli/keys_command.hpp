// `cdrmix keys [TOPIC] [--json] [--markdown DIR]`: the configuration keys every
// configurable thing declares in its cdrmix::Schema (name, type, default,
// range or choices, aliases, meaning), from the schemas themselves, so the
// listing and docs/reference/ cannot drift from what the code accepts.
// Topics: the host's model, trainer, adamw and schedule, and every factory
// the loaded plugins registered (blocks, routers, data sources, backends).
#pragma once

#include <cdrmix/registry.hpp>

#include <CLI/CLI.hpp>

#include <string>

namespace cdrmix {

struct KeysOptions {
    std::string topic;        // empty: list the topics
    bool json = false;
    std::string markdown_dir; // set: write the reference pages there
};

CLI::App *add_keys_command(CLI::App &app, KeysOptions &options);

// Returns the exit code; errors a user can cause throw cdrmix::Error (one line).
// The registry must hold the loaded plugins' factories.
int run_keys_command(const KeysOptions &options, const Registry &registry);

} // namespace cdrmix
