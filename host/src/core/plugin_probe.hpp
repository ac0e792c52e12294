// Loading plugin files in a child process before the host loads them.
//
// A plugin is a shared library: loading it runs its static initializers and
// registering runs its code, inside the loading process. A library that
// crashes, aborts or calls exit() there would take the host down without
// naming itself. So each plugin file is first loaded by `cdrmix-plugin-probe`,
// a small program installed beside `cdrmix`; a file that kills the probe, or
// keeps it busy past the timeout, is reported and never loaded into the host.
// Verdicts are cached by canonical path, size and modification time, so only
// new or changed files cost a probe (one child for all of them).
//
// Protocol: `cdrmix-plugin-probe FILE...` writes "begin N" to file descriptor 3
// before it loads FILE N (0-based) and "end N" after, one line each, unbuffered;
// its stdout and stderr are discarded. The file begun and not ended when the
// probe dies is the culprit; the files after it go to a new probe.
//
// Threads: check() is called from one thread; it blocks until the probes end.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace cdrmix {

struct ProbeVerdict {
    bool safe = true;
    std::string why; // when not safe: "crashed while loading (SIGSEGV: Segmentation fault)"
};

class PluginProbe {
public:
    // probe_program: the probe's path; cache_file: where verdicts are kept ("" keeps none).
    PluginProbe(std::string probe_program, std::string cache_file, double timeout_seconds = 30);

    // A verdict for each file, by the path given; probes the files the cache does not know.
    // Throws cdrmix::Error when the probe program cannot be started.
    std::map<std::string, ProbeVerdict> check(const std::vector<std::string> &files);

    // Problems that cost nothing but speed (the cache could not be written), one line each.
    const std::vector<std::string> &warnings() const { return warnings_; }

    // The probe beside this executable, its cache in $CDRMIX_CACHE_DIR, else
    // $XDG_CACHE_HOME/cdrmix, else ~/.cache/cdrmix (plugin-probes.json); the
    // timeout from $CDRMIX_PLUGIN_PROBE_TIMEOUT (seconds). nullopt when no probe
    // program is installed beside the executable.
    static std::optional<PluginProbe> for_this_host();

private:
    // Runs one probe over files[first..]; fills verdicts; returns the index to resume from.
    size_t probe_from(const std::vector<std::string> &files, size_t first, std::map<std::string, ProbeVerdict> &out);

    std::string program_, cache_file_;
    double timeout_seconds_;
    std::vector<std::string> warnings_;
};

} // namespace cdrmix
