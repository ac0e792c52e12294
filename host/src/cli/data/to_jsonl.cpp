// `cdrmix data to-jsonl`: one {"text", "source"} record per file of a folder.
#include "cli/data/subcommands.hpp"

#include <cdrmix/atomic_file.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <sstream>

namespace cdrmix {

namespace {

std::string read_file(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(path + ": cannot read");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

class ToJsonl final : public DataSubcommand {
public:
    explicit ToJsonl(CLI::App &data)
        : DataSubcommand(data.add_subcommand("to-jsonl", "A folder of text files to JSONL, one {\"text\"} record per file")) {
        app().add_option("inputs", inputs_, "Folders, files or globs")->required();
        app().add_option("-o,--output", output_, "The .jsonl file to write")->required();
        app().add_option("--ext", extensions_, "File extensions to take (default .txt .md .rst .json .jsonl)");
        app().add_option("--max-files", max_files_, "Take at most this many files (sorted by path)");
    }

    int run() override {
        const auto files = chosen_files();
        int64_t bytes = 0;
        AtomicFileWriter out(output_);
        for (const auto &f : files) {
            const std::string text = read_file(f);
            bytes += static_cast<int64_t>(text.size());
            // Invalid UTF-8 becomes U+FFFD rather than failing the whole conversion.
            out.write(Json{{"text", text}, {"source", f}}.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n");
        }
        out.commit();
        std::printf("wrote %s: %zu records, %lld bytes of text\n", output_.c_str(), files.size(),
                    static_cast<long long>(bytes));
        return 0;
    }

private:
    // The input files with a wanted extension, at most --max-files of them.
    std::vector<std::string> chosen_files() const {
        std::vector<std::string> files;
        for (const auto &f : corpus_files(inputs_))
            if (std::count(extensions_.begin(), extensions_.end(), std::filesystem::path(f).extension().string()))
                files.push_back(f);
        if (files.empty()) throw Error("cdrmix data to-jsonl: no files with the extensions given under the inputs");
        if (max_files_ > 0 && static_cast<int64_t>(files.size()) > max_files_) files.resize(static_cast<size_t>(max_files_));
        return files;
    }

    std::vector<std::string> inputs_;
    std::string output_;
    std::vector<std::string> extensions_ = {".txt", ".md", ".rst", ".json", ".jsonl"};
    int64_t max_files_ = 0;
};

} // namespace

std::unique_ptr<DataSubcommand> add_to_jsonl(CLI::App &data) { return std::make_unique<ToJsonl>(data); }

} // namespace cdrmix
