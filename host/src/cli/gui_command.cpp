#include "cli/gui_command.hpp"

#include <cstdio>
#include <filesystem>

#ifdef CDRMIX_WITH_DASHBOARD
#include "cli/commands.hpp"
#include "cli/gui_session.hpp"
#include "core/device.hpp"
#include "core/plugin_loader.hpp"
#include "lua/lua_modules.hpp"

#include <cdrmix/registry.hpp>
#endif

namespace cdrmix {

CLI::App *add_gui_command(CLI::App &app, GuiOptions &o) {
    auto *gui = app.add_subcommand("gui", "Run a Lua experiment script with the live dashboard, or watch run directories");
    gui->add_option("script", o.script, "The .lua script (not with --watch)");
    gui->add_option("overrides", o.overrides, "key=value settings for the script's cdrmix.config");
    gui->add_option("--watch", o.watch,
                    "Run directories (or metrics.jsonl files, or folders of runs such as a sweep) to show, followed "
                    "as they grow")
        ->expected(1, -1);
    gui->add_option("--runs-dir", o.runs_dir, "Where run directories are created (default: runs)");
    gui->add_flag("--headless", o.headless, "JSON lines on stdout instead of a progress bar");
    gui->add_option("--screenshot", o.screenshot, "With --frames: write the last frame to this PNG file");
    gui->add_option("--inspect", o.inspect,
                    "With a script: once it has ended, route this text through the final weights and open the "
                    "routing inspector on it (with --frames/--screenshot: a picture of the inspector)");
    gui->add_flag("--specialisation", o.specialisation,
                  "With a script: once it has ended, count which tokens each expert receives over a sample of its "
                  "held-out data and open the specialisation view");
    gui->add_option("--frames", o.frames,
                    "Render this many frames once the data is in (the script has ended, or the watched files are "
                    "read), then exit")
        ->check(CLI::PositiveNumber);
    gui->add_option("--max-fps", o.max_fps, "Frame rate cap (default 30)")->check(CLI::PositiveNumber);
    gui->add_option("--size", o.size, "Window width and height in pixels (default 1280 800)");
    return gui;
}

int run_gui_command(const GuiOptions &o, const std::vector<std::string> &plugin_paths, const std::string &device) {
    const bool watching = !o.watch.empty();
    if (watching == !o.script.empty()) {
        std::fprintf(stderr, "cdrmix: error: gui needs a script or --watch RUN_DIR, not %s\n", watching ? "both" : "neither");
        return 1;
    }
    if ((!o.inspect.empty() || o.specialisation) && watching) {
        std::fprintf(stderr, "cdrmix: error: %s needs a script (it routes through a live run's weights), not --watch\n",
                     o.inspect.empty() ? "--specialisation" : "--inspect");
        return 1;
    }
    if (!o.screenshot.empty() && o.frames == 0) {
        std::fprintf(stderr, "cdrmix: error: --screenshot needs --frames N (which frame to capture)\n");
        return 1;
    }
#ifdef CDRMIX_WITH_DASHBOARD
    ui::AppOptions app;
    app.title = watching ? "cdrmix: watching " + o.watch.front() : "cdrmix: " + o.script;
    app.width = o.size.first;
    app.height = o.size.second;
    app.max_fps = o.max_fps;
    app.frames = o.frames;
    app.screenshot = o.screenshot;
    try {
        // Both modes list the routers (the Swap and Branch tabs); a branch is a `cdrmix branch` process.
        lua::register_lua_modules(Registry::global());
        PluginLoader loader(Registry::global());
        loader.load_all(PluginLoader::search_path(plugin_paths));
        for (const auto &p : loader.problems()) std::fprintf(stderr, "cdrmix: warning: %s\n", p.message.c_str());
        BranchLauncher branches(plugin_paths, 0);
        if (watching) return run_watch_gui(o.watch, app, branches);
        if (const std::string problem = script_file_problem(o.script); !problem.empty()) {
            std::fprintf(stderr, "cdrmix: error: %s\n", problem.c_str());
            return 1;
        }
        lua::RunOptions run;
        run.script = o.script;
        run.overrides = o.overrides;
        run.headless = o.headless;
        run.runs_root = o.runs_dir;
        run.plugins = loader.loaded();
        run.device = resolve_device(Registry::global(), device);
        return run_script_gui(std::move(run), app, branches, {o.inspect, o.specialisation});
    } catch (const ui::DisplayError &e) {
        std::fprintf(stderr, "cdrmix: error: %s\n", e.what());
        return 1;
    }
#else
    (void)plugin_paths;
    (void)device;
    std::fprintf(stderr, "cdrmix: error: this cdrmix was built without the dashboard (install libimgui-dev "
                         "libglfw3-dev libgl-dev and rebuild); use `cdrmix run` instead\n");
    return 1;
#endif
}

} // namespace cdrmix
