#include "cli/recorded_run.hpp"

#include "cli/child_process.hpp"
#include "run/environment.hpp"
#include "run/run_folder.hpp"

#include <cdrmix/error.hpp>

#include <fstream>

namespace fs = std::filesystem;

namespace cdrmix {

namespace env = run_environment::keys;

Json read_run_json(const fs::path &path, const std::string &command) {
    constexpr uintmax_t kMaxBytes = 64u << 20;
    std::error_code ec;
    const uintmax_t size = fs::file_size(path, ec);
    if (ec) throw Error(command + ": " + path.string() + ": cannot read: " + ec.message());
    if (size > kMaxBytes)
        throw Error(command + ": " + path.string() + ": " + std::to_string(size) + " bytes, more than a run's config may hold");
    std::ifstream in(path, std::ios::binary);
    std::string text(static_cast<size_t>(size), '\0');
    if (!in.read(text.data(), static_cast<std::streamsize>(size))) throw Error(command + ": " + path.string() + ": cannot read");
    Json j = Json::parse(text, nullptr, false);
    if (j.is_discarded()) throw Error(command + ": " + path.string() + ": not JSON");
    return j;
}

std::string text_field(const Json &j, const char *key, const std::string &fallback) {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : fallback;
}

RecordedRun read_recorded_run(const fs::path &dir, const std::string &command) {
    if (!fs::is_directory(dir)) throw Error(command + ": " + dir.string() + ": no such run folder");
    RecordedRun r;
    r.dir = dir;
    r.config = read_run_json(dir / run_layout::config, command);
    const Json &config = r.config;
    if (!config.contains(env::environment) || !config[env::environment].is_object())
        throw Error(command + ": " + (dir / run_layout::config).string() +
                    " has no 'environment': the run was made before runs recorded what " + command + " needs");
    r.environment = config[env::environment];
    const auto ws_it = r.environment.find(env::world_size);
    const Json ws = ws_it == r.environment.end() ? Json(1) : *ws_it;
    if (ws != Json(1))
        throw Error(command + ": " + dir.string() + " ran on " + ws.dump() + " processes; " + command +
                    " re-runs single-process runs");
    if (!config.contains("script") || !config["script"].is_string() || config["script"].get<std::string>().empty())
        throw Error(command + ": " + (dir / run_layout::config).string() + " names no script");
    r.script = config["script"].get<std::string>();
    r.script_copy = (dir / fs::path(r.script).filename()).string();
    if (!fs::is_regular_file(r.script_copy))
        throw Error(command + ": " + r.script_copy + ": the run folder's copy of the script is missing");
    if (config.contains("overrides") && config["overrides"].is_array())
        for (const auto &o : config["overrides"])
            if (o.is_string()) r.overrides.push_back(o.get<std::string>());
    r.plugins = read_run_json(dir / run_layout::plugins, command);
    return r;
}

int rerun_threads(const RecordedRun &run, int threads) {
    if (threads > 0) return threads;
    const auto it = run.environment.find(env::threads);
    return it != run.environment.end() && it->is_number_integer() ? it->get<int>() : 0;
}

std::string rerun_device(const RecordedRun &run, const std::string &device) {
    return device != "cpu" ? device : text_field(run.environment, env::device, "cpu");
}

std::vector<std::string> rerun_args(const RecordedRun &run, const std::vector<std::string> &plugin_paths, int threads,
                                    const std::string &device, const std::string &runs_dir) {
    std::vector<std::string> args = {this_program()};
    for (const auto &p : plugin_paths) args.insert(args.end(), {"--plugin-path", fs::absolute(p).string()});
    if (const int n = rerun_threads(run, threads); n > 0) args.insert(args.end(), {"--threads", std::to_string(n)});
    args.insert(args.end(), {"--device", rerun_device(run, device), "run", fs::absolute(run.script_copy).string()});
    args.insert(args.end(), run.overrides.begin(), run.overrides.end());
    if (const auto seed = run.environment.find(env::torch_seed);
        seed != run.environment.end() && seed->is_number_unsigned())
        args.insert(args.end(), {"--seed", std::to_string(seed->get<uint64_t>())});
    // The copy's relative paths are the original's (it runs in the recorded working folder).
    args.insert(args.end(), {"--headless", "--runs-dir", runs_dir, "--script-origin", run.script});
    return args;
}

} // namespace cdrmix
