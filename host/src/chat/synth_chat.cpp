#include "chat/synth_chat.hpp"

#include <cdrmix/error.hpp>
#include <cdrmix/schema.hpp>
#include <cdrmix/window_source.hpp>

#include <algorithm>
#include <random>

namespace cdrmix {

namespace {

struct Capital {
    const char *country, *city;
};
const std::vector<Capital> &capitals() {
    static const std::vector<Capital> table = {{"France", "Paris"}, {"Peru", "Lima"},     {"Japan", "Tokyo"},
                                               {"Kenya", "Nairobi"}, {"Chile", "Santiago"}, {"Spain", "Madrid"},
                                               {"Egypt", "Cairo"},  {"Canada", "Ottawa"}};
    return table;
}

// Conversions: from, to, factor.
struct Unit {
    const char *from, *to;
    int64_t factor;
};
const std::vector<Unit> &units() {
    static const std::vector<Unit> table = {{"km", "m", 1000}, {"kg", "g", 1000}, {"h", "min", 60}, {"min", "s", 60}};
    return table;
}

const std::vector<std::string> &words() {
    static const std::vector<std::string> w = {"apple", "river", "stone", "cloud", "tiger", "lemon", "piano", "candle"};
    return w;
}

class Draw {
public:
    Draw(SynthKind kind, uint64_t seed, int64_t index, uint64_t attempt)
        : rng_(mix_key({seed, uint64_t(kind) + 0x73796e74ULL, uint64_t(index), attempt})) {}
    int64_t in(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng_); }
    template <class T> const T &pick(const std::vector<T> &v) { return v[size_t(in(0, int64_t(v.size()) - 1))]; }

private:
    std::mt19937_64 rng_;
};

Json message(const char *role, const std::string &content) { return {{"role", role}, {"content", content}}; }

Json record(std::vector<Json> messages, const std::string &answer) {
    return {{"messages", messages}, {"answer", answer}};
}

Json tool_conversation(Draw &d) {
    std::string question, result, answer;
    Json call;
    switch (d.in(0, 2)) {
    case 0: {
        const int64_t a = d.in(2, 99), b = d.in(2, 99);
        const char op = "+-*"[d.in(0, 2)];
        const std::string expr = std::to_string(a) + op + std::to_string(b);
        question = "What is " + std::to_string(a) + " " + op + " " + std::to_string(b) + "?";
        call = {{"name", "calculator"}, {"arguments", {{"expression", expr}}}};
        result = answer = std::to_string(op == '+' ? a + b : op == '-' ? a - b : a * b);
        break;
    }
    case 1: {
        const Unit &u = d.pick(units());
        const int64_t v = d.in(1, 9);
        question = "Convert " + std::to_string(v) + " " + u.from + " to " + u.to + ".";
        call = {{"name", "convert"}, {"arguments", {{"value", v}, {"from", u.from}, {"to", u.to}}}};
        result = std::to_string(v * u.factor);
        answer = result + " " + u.to;
        break;
    }
    default: {
        const Capital &c = d.pick(capitals());
        question = std::string("What is the capital of ") + c.country + "?";
        call = {{"name", "lookup"}, {"arguments", {{"country", c.country}}}};
        result = answer = c.city;
    }
    }
    Json r = record({message("user", question), {{"role", "assistant"}, {"content", ""}, {"tool_calls", {call}}},
                     message("tool", result), message("assistant", answer)},
                    answer);
    r["tools"] = synth_tools();
    return r;
}

Json instruct_conversation(Draw &d) {
    std::string question, answer;
    switch (d.in(0, 3)) {
    case 0: {
        const Capital &c = d.pick(capitals());
        question = std::string("Capital of ") + c.country + "?";
        answer = c.city;
        break;
    }
    case 1:
        answer = d.pick(words());
        question = "Repeat: " + answer;
        break;
    case 2: {
        const std::string w = d.pick(words());
        question = "Uppercase: " + w;
        answer = w;
        for (char &ch : answer) ch = char(ch - 'a' + 'A');
        break;
    }
    default: {
        const int64_t a = d.in(0, 9), b = d.in(0, 9);
        question = "Add " + std::to_string(a) + " and " + std::to_string(b) + ".";
        answer = std::to_string(a + b);
    }
    }
    return record({message("user", question), message("assistant", answer)}, answer);
}

Json reasoning_conversation(Draw &d) {
    std::string question, thought, answer;
    const int64_t a = d.in(10, 99), b = d.in(10, 99);
    if (d.in(0, 1) == 0) {
        question = "Which is larger, " + std::to_string(a) + " or " + std::to_string(b) + "?";
        const int64_t big = std::max(a, b);
        thought = "Compare tens, then ones: " + std::to_string(big) + " is not smaller.";
        answer = std::to_string(big);
    } else {
        const int64_t x = d.in(1, 9), y = d.in(1, 9), z = d.in(1, 9);
        question = "What is " + std::to_string(x) + " + " + std::to_string(y) + " + " + std::to_string(z) + "?";
        thought = std::to_string(x) + " + " + std::to_string(y) + " = " + std::to_string(x + y) + ". " +
                  std::to_string(x + y) + " + " + std::to_string(z) + " = " + std::to_string(x + y + z) + ".";
        answer = std::to_string(x + y + z);
    }
    return record({message("user", question), message("assistant", "<think>" + thought + "</think>" + answer)}, answer);
}

} // namespace

SynthKind parse_synth_kind(const std::string &name) {
    if (name == "tools") return SynthKind::Tools;
    if (name == "instruct") return SynthKind::Instruct;
    if (name == "reasoning") return SynthKind::Reasoning;
    const std::string near = closest_word(name, {"tools", "instruct", "reasoning"});
    throw Error("--kind: '" + name + "' is not a kind (tools, instruct, reasoning)" +
                (near.empty() ? "" : "; did you mean '" + near + "'?"));
}

Json synth_tools() {
    auto str = [] { return Json{{"type", "string"}}; };
    std::vector<std::string> from, to, countries;
    for (const auto &u : units()) from.push_back(u.from), to.push_back(u.to);
    for (const auto &c : capitals()) countries.push_back(c.country);
    auto tool = [](const char *name, Json properties, std::vector<std::string> required) {
        return Json{{"name", name},
                    {"parameters",
                     {{"type", "object"}, {"properties", std::move(properties)}, {"required", std::move(required)}}}};
    };
    return Json::array({tool("calculator", {{"expression", str()}}, {"expression"}),
                        tool("convert", {{"value", {{"type", "number"}}}, {"from", {{"enum", from}}}, {"to", {{"enum", to}}}},
                             {"value", "from", "to"}),
                        tool("lookup", {{"country", {{"enum", countries}}}}, {"country"})});
}

SynthSplit synth_split_of(const std::string &question) {
    uint64_t h = 0xcbf29ce484222325ULL; // FNV-1a: the same on every platform, unlike std::hash
    for (unsigned char c : question) h = (h ^ c) * 0x100000001b3ULL;
    return mix_key({h}) % 5 == 0 ? SynthSplit::Test : SynthSplit::Train;
}

Json synth_conversation(SynthKind kind, uint64_t seed, int64_t index, SynthSplit split) {
    // Drawn again until the question is one of the split's: with a fifth of the
    // questions held out, 200 attempts all missing has odds below 1e-19.
    for (uint64_t attempt = 0; attempt < 200; ++attempt) {
        Draw d(kind, seed, index, attempt);
        Json r = kind == SynthKind::Tools      ? tool_conversation(d)
                 : kind == SynthKind::Instruct ? instruct_conversation(d)
                                               : reasoning_conversation(d);
        if (synth_split_of(r["messages"][0]["content"].get<std::string>()) == split) return r;
    }
    throw Error("synth_conversation: no question of the requested split drawn (index " + std::to_string(index) + ")");
}

std::string chat_answer(const std::string &reply) {
    const std::string close = "</think>";
    const size_t at = reply.rfind(close);
    std::string a = at == std::string::npos ? reply : reply.substr(at + close.size());
    const size_t b = a.find_first_not_of(" \t\r\n"), e = a.find_last_not_of(" \t\r\n");
    return b == std::string::npos ? "" : a.substr(b, e - b + 1);
}

} // namespace cdrmix
