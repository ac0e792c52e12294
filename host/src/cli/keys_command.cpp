#include "cli/keys_command.hpp"

#include "interop/import_model.hpp"
#include "interop/upcycle.hpp"
#include "model/model.hpp"
#include "train/schedule.hpp"
#include "train/trainer.hpp"

#include <cdrmix/atomic_file.hpp>
#include <cdrmix/error.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>

namespace cdrmix {

namespace {

// One reference page: a group of topics.
struct Group {
    const char *name;  // file name without .md, and the heading of `cdrmix keys`
    const char *title;
    const char *intro; // one line under the title
};

const Group kGroups[] = {
    {"model", "Model", "Keys of a model spec: a YAML preset (configs/models/) or the table given to cdrmix.model."},
    {"trainer", "Trainer", "Keys of the stock trainer (cdrmix.trainer), which include the optimiser's and the "
                           "schedule's; cdrmix.adamw and cdrmix.schedule take those alone."},
    {"blocks", "Blocks", "Keys of each block plugin: the tables under mixer, ffn, expert, attention, mamba and layers "
                         "in a model spec, chosen by their type key."},
    {"routers", "Routers", "Keys of each router plugin: the router table of an MoE layer, chosen by its type key."},
    {"data", "Data sources", "Keys of each data source plugin: the table given to cdrmix.data, chosen by its type key."},
    {"backends", "Backends", "Keys of each backend plugin (devices: --device NAME)."},
    {"interop", "Formats in and out", "Settings of the commands that bring models in and out (docs/interop.md)."},
};

const char *group_of(PluginKind kind) {
    switch (kind) {
    case PluginKind::Block: return "blocks";
    case PluginKind::Router: return "routers";
    case PluginKind::DataSource: return "data";
    case PluginKind::Backend: return "backends";
    }
    return "";
}

struct Topic {
    std::string name, group, summary;
    std::string plugin; // "" for the host's own
    std::shared_ptr<const Schema> schema;
};

// A host schema is a static that lives for the whole process: shared without ownership.
std::shared_ptr<const Schema> host_schema(const Schema &schema) { return {std::shared_ptr<const Schema>(), &schema}; }

// Every topic, grouped as kGroups orders them; the host's in a fixed order, plugins' by name.
std::vector<Topic> all_topics(const Registry &registry) {
    std::vector<Topic> topics = {
        {"model", "model", ModelSpec::schema().doc(), "", host_schema(ModelSpec::schema())},
        {"trainer", "trainer", TrainConfig::schema().doc(), "", host_schema(TrainConfig::schema())},
        {"adamw", "trainer", adamw_schema().doc(), "", host_schema(adamw_schema())},
        {"schedule", "trainer", schedule_schema().doc(), "", host_schema(schedule_schema())},
        {"import", "interop", ImportOptions::schema().doc(), "", host_schema(ImportOptions::schema())},
        {"upcycle", "interop", UpcycleOptions::schema().doc(), "", host_schema(UpcycleOptions::schema())},
    };
    auto factories = registry.list();
    std::sort(factories.begin(), factories.end(), [](const FactoryInfo &a, const FactoryInfo &b) { return a.name < b.name; });
    for (const auto &group : kGroups)
        for (const auto &f : factories)
            if (group_of(f.kind) == std::string(group.name))
                topics.push_back({f.name, group.name, f.description, f.plugin, f.schema});
    return topics;
}

std::string number_text(double v) {
    if (std::floor(v) == v && std::fabs(v) < 1e15) return std::to_string(static_cast<long long>(v));
    std::ostringstream os;
    os << v;
    return os.str();
}

std::string joined(const std::vector<std::string> &items, const std::string &sep) {
    std::string out;
    for (const auto &item : items) out += (out.empty() ? "" : sep) + item;
    return out;
}

// The cells of one key's row, as plain text.
struct KeyCells {
    std::string name, type, fallback, range, aliases, doc;
};

KeyCells cells(const KeySpec &k) {
    KeyCells c{k.name, key_type_name(k.type), "", "", joined(k.aliases, ", "), k.doc};
    if (!k.default_text.empty()) c.fallback = k.default_text;
    else if (!k.default_value.is_null()) c.fallback = k.default_value.dump();
    else if (k.required) c.fallback = "required";
    if (!k.choices.empty()) c.range = joined(k.choices, ", ");
    else if (k.min && k.max) c.range = "[" + number_text(*k.min) + ", " + number_text(*k.max) + "]";
    else if (k.min) c.range = ">= " + number_text(*k.min);
    else if (k.max) c.range = "<= " + number_text(*k.max);
    return c;
}

Json topic_json(const Topic &t) {
    return {{"topic", t.name}, {"group", t.group}, {"summary", t.summary}, {"plugin", t.plugin}, {"schema", t.schema->to_json()}};
}

// ---- text ----
void print_topic_list(const std::vector<Topic> &topics) {
    size_t width = 0;
    for (const auto &t : topics) width = std::max(width, t.name.size());
    for (const auto &group : kGroups) {
        std::printf("%s\n", group.title);
        for (const auto &t : topics)
            if (t.group == group.name) std::printf("  %-*s  %s\n", static_cast<int>(width), t.name.c_str(), t.summary.c_str());
    }
    std::printf("\n`cdrmix keys TOPIC` lists a topic's keys.\n");
}

void print_topic(const Topic &t) {
    const std::string origin = t.plugin.empty() ? "host" : "plugin " + t.plugin;
    std::printf("%s (%s, %s): %s\n", t.name.c_str(), t.group.c_str(), origin.c_str(), t.summary.c_str());
    if (!t.schema->doc().empty() && t.schema->doc() != t.summary) std::printf("  %s\n", t.schema->doc().c_str());
    std::vector<KeyCells> rows = {{"KEY", "TYPE", "DEFAULT", "RANGE", "ALIASES", "MEANING"}};
    for (const auto &k : t.schema->keys()) rows.push_back(cells(k));
    size_t widths[5] = {0, 0, 0, 0, 0};
    for (const auto &r : rows) {
        const std::string *cols[5] = {&r.name, &r.type, &r.fallback, &r.range, &r.aliases};
        for (int i = 0; i < 5; ++i) widths[i] = std::max(widths[i], cols[i]->size());
    }
    for (const auto &r : rows) {
        std::printf("  %-*s  %-*s  %-*s  %-*s  %-*s  %s\n", static_cast<int>(widths[0]), r.name.c_str(),
                    static_cast<int>(widths[1]), r.type.c_str(), static_cast<int>(widths[2]), r.fallback.c_str(),
                    static_cast<int>(widths[3]), r.range.c_str(), static_cast<int>(widths[4]), r.aliases.c_str(),
                    r.doc.c_str());
    }
    if (t.schema->keys().empty()) std::printf("  (no keys besides type)\n");
}

// ---- markdown ----
std::string md_cell(const std::string &text) {
    std::string out;
    for (char c : text) out += c == '|' ? std::string("\\|") : c == '\n' ? std::string(" ") : std::string(1, c);
    return out;
}

std::string md_code(const std::string &text) { return text.empty() ? "" : "`" + md_cell(text) + "`"; }

std::string md_topic(const Topic &t) {
    std::string out = "## " + t.name + "\n\n" + (t.plugin.empty() ? "" : "Plugin " + md_code(t.plugin) + ": ") +
                      md_cell(t.summary) + "\n\n";
    if (!t.schema->doc().empty() && t.schema->doc() != t.summary) out += md_cell(t.schema->doc()) + "\n\n";
    if (t.schema->keys().empty()) return out + "No keys besides `type`.\n\n";
    out += "| Key | Type | Default | Range / choices | Aliases | Meaning |\n|---|---|---|---|---|---|\n";
    for (const auto &k : t.schema->keys()) {
        const KeyCells c = cells(k);
        std::vector<std::string> aliases;
        for (const auto &a : k.aliases) aliases.push_back(md_code(a));
        out += "| " + md_code(c.name) + " | " + c.type + " | " + (k.default_text.empty() ? md_code(c.fallback) : md_cell(c.fallback)) +
               " | " + md_cell(c.range) + " | " + joined(aliases, ", ") + " | " + md_cell(c.doc) + " |\n";
    }
    return out + "\n";
}

std::string md_page(const Group &group, const std::vector<Topic> &topics) {
    std::string out = "<!-- Generated by `cdrmix keys --markdown docs/reference` from the declared schemas: "
                      "do not edit by hand. -->\n# " +
                      std::string(group.title) + "\n\n" + group.intro + "\n\n";
    for (const auto &t : topics)
        if (t.group == group.name) out += md_topic(t);
    out.pop_back(); // one newline at the end of the file
    return out;
}

void write_markdown(const std::string &dir, const std::vector<Topic> &topics) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) throw Error(dir + ": cannot create the folder: " + ec.message());
    for (const auto &group : kGroups)
        write_file_atomic((std::filesystem::path(dir) / (std::string(group.name) + ".md")).string(), md_page(group, topics));
    std::printf("wrote %zu reference pages to %s\n", std::size(kGroups), dir.c_str());
}

// The topics named `name` (a name two plugin kinds share gives two).
std::vector<Topic> find_topics(const std::vector<Topic> &topics, const std::string &name) {
    std::vector<Topic> found;
    std::vector<std::string> names;
    for (const auto &t : topics) {
        if (t.name == name) found.push_back(t);
        names.push_back(t.name);
    }
    if (!found.empty()) return found;
    const std::string near = closest_word(name, names);
    throw Error("no topic '" + name + "'" + (near.empty() ? "" : "; did you mean '" + near + "'?") +
                " (`cdrmix keys` lists the topics)");
}

} // namespace

CLI::App *add_keys_command(CLI::App &app, KeysOptions &options) {
    auto *keys = app.add_subcommand("keys", "Configuration keys: type, default, range, aliases and meaning, from the schemas");
    keys->add_option("topic", options.topic, "model, trainer, adamw, schedule or a plugin factory (topk, jsonl, ...)");
    keys->add_flag("--json", options.json, "Print the schemas as JSON");
    keys->add_option("--markdown", options.markdown_dir, "Write the reference pages (docs/reference) into this folder");
    return keys;
}

int run_keys_command(const KeysOptions &options, const Registry &registry) {
    const auto topics = all_topics(registry);
    if (!options.markdown_dir.empty()) {
        if (!options.topic.empty() || options.json)
            throw Error("--markdown writes every topic: give it without a TOPIC or --json");
        write_markdown(options.markdown_dir, topics);
        return 0;
    }
    const bool listing = options.topic.empty();
    const auto chosen = listing ? topics : find_topics(topics, options.topic);
    if (options.json) {
        Json j = Json::array();
        for (const auto &t : chosen) j.push_back(topic_json(t));
        std::printf("%s\n", (!listing && j.size() == 1 ? j[0] : j).dump(2).c_str());
    } else if (listing) {
        print_topic_list(topics);
    } else {
        for (size_t i = 0; i < chosen.size(); ++i) {
            if (i) std::printf("\n");
            print_topic(chosen[i]);
        }
    }
    return 0;
}

} // namespace cdrmix
