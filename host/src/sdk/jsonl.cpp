#include <cdrmix/error.hpp>
#include <cdrmix/jsonl.hpp>

#include <cstdlib>
#include <cstring>

namespace cdrmix {

JsonlLines::JsonlLines(const std::string &path, int64_t offset, int64_t line)
    : path_(path), offset_(offset), line_(line) {
    file_ = std::fopen(path.c_str(), "rb");
    if (!file_) throw Error(path + ": cannot open: " + std::strerror(errno));
    if (offset > 0 && fseeko(file_, static_cast<off_t>(offset), SEEK_SET) != 0) {
        std::fclose(file_);
        throw Error(path + ": cannot seek to byte " + std::to_string(offset));
    }
}

JsonlLines::~JsonlLines() {
    std::free(buffer_);
    std::fclose(file_);
}

bool JsonlLines::next(std::string &text) {
    const ssize_t n = ::getline(&buffer_, &capacity_, file_);
    if (n < 0) return false;
    offset_ += n;
    ++line_;
    size_t len = static_cast<size_t>(n);
    while (len > 0 && (buffer_[len - 1] == '\n' || buffer_[len - 1] == '\r')) --len;
    text.assign(buffer_, len);
    return true;
}

Schema record_format_keys() {
    Schema s;
    s.string("field", "", "the record field to read (\"\": text, else tokens, else input_ids)");
    s.string("separator", "\n", "appended to every text record before tokenising");
    s.integer("eos_id", -1, "token id appended after every record (-1: none)").min(-1);
    s.string("on_error", "fail", "a malformed record stops the run, or is warned about and skipped")
        .one_of({"fail", "skip"});
    return s;
}

RecordFormat read_record_format(const Config &cfg) {
    RecordFormat f;
    f.field = cfg.get_string("field");
    f.separator = cfg.get_string("separator");
    f.eos_id = cfg.get_int("eos_id");
    f.skip_malformed = cfg.get_string("on_error") == "skip";
    return f;
}

namespace {

bool blank(const std::string &line) { return line.find_first_not_of(" \t\r\n") == std::string::npos; }

struct Located {
    const std::string &file;
    int64_t line;
    [[noreturn]] void fail(const std::string &what) const {
        throw Error(file + ":" + std::to_string(line) + ": " + what);
    }
};

Json parse_record(const std::string &line, const Located &at) {
    Json j;
    try {
        j = Json::parse(line);
    } catch (const Json::exception &e) {
        // A parse_error, or an out_of_range for a number beyond a double (1e999). nlohmann's
        // message starts with "[json.exception.parse_error.101] "; the rest says where.
        const std::string what = e.what();
        const size_t cut = what.find("] ");
        at.fail("not valid JSON: " + (cut == std::string::npos ? what : what.substr(cut + 2)));
    }
    if (!j.is_object()) at.fail("expected a JSON object, got " + std::string(j.type_name()));
    return j;
}

// The field a record is read from: the configured one, or the first present of text, tokens, input_ids.
const std::string &pick_field(const Json &record, const RecordFormat &format, const Located &at) {
    static const std::string candidates[] = {"text", "tokens", "input_ids"};
    if (!format.field.empty()) {
        if (!record.contains(format.field)) at.fail("record has no '" + format.field + "' field");
        return format.field;
    }
    for (const auto &c : candidates)
        if (record.contains(c)) return c;
    at.fail("record has no 'text', 'tokens' or 'input_ids' field");
}

} // namespace

bool record_tokens(const std::string &line, const Tokenizer &tokenizer, const RecordFormat &format,
                   const std::string &file, int64_t line_number, std::vector<int64_t> &out) {
    if (blank(line)) return false;
    const Located at{file, line_number};
    const Json record = parse_record(line, at);
    const std::string &field = pick_field(record, format, at);
    const Json &value = record.at(field);
    if (value.is_string()) {
        std::vector<int64_t> ids;
        try {
            ids = tokenizer.encode(value.get_ref<const std::string &>() + format.separator);
        } catch (const Error &e) {
            at.fail(e.what());
        }
        out.insert(out.end(), ids.begin(), ids.end());
    } else if (value.is_array()) {
        const Json *mask = nullptr;
        if (field == "input_ids" && record.contains("attention_mask")) {
            mask = &record.at("attention_mask");
            if (!mask->is_array() || mask->size() != value.size())
                at.fail("'attention_mask' must be a list as long as 'input_ids'");
        }
        const int64_t vocab = tokenizer.vocab_size();
        const size_t before = out.size();
        for (size_t i = 0; i < value.size(); ++i) {
            const Json &v = value[i];
            if (!v.is_number_integer()) {
                out.resize(before);
                at.fail("'" + field + "'[" + std::to_string(i) + "] is not an integer token id");
            }
            if (mask && (*mask)[i] == 0) continue;
            const int64_t id = v.get<int64_t>();
            if (id < 0 || id >= vocab) {
                out.resize(before);
                at.fail("token " + std::to_string(id) + " in '" + field + "' is outside the vocabulary (0.." +
                        std::to_string(vocab - 1) + ")");
            }
            out.push_back(id);
        }
    } else {
        at.fail("field '" + field + "' must be a string or a list of token ids, got " + value.type_name());
    }
    if (format.eos_id >= 0) out.push_back(format.eos_id);
    return true;
}

bool record_text(const std::string &line, const RecordFormat &format, const std::string &file, int64_t line_number,
                 std::string &text) {
    if (blank(line)) return false;
    const Located at{file, line_number};
    const Json record = parse_record(line, at);
    const Json &value = record.at(pick_field(record, format, at));
    if (!value.is_string()) return false;
    text = value.get<std::string>() + format.separator;
    return true;
}

} // namespace cdrmix
