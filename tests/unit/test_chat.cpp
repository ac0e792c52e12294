// Chat fine-tuning: template rendering and its loss spans on hand-worked
// conversations, the `chat` source's batches and masks, the masked loss against
// one computed by hand, masked gradient accumulation and eval in the trainer,
// bad records, template files, and tool calls checked against their schemas.
#include "chat/tool_calls.hpp"
#include "metrics/metrics.hpp"
#include "test_util.hpp"
#include "train/evaluate.hpp"
#include "train/masked_loss.hpp"
#include "train/trainer.hpp"

#include <cdrmix/chat.hpp>
#include <cdrmix/loss_mask.hpp>

#include <fstream>

namespace {

namespace fs = std::filesystem;
using cdrmix::Json;
using cdrmix::Split;

const cdrmix::ChatTemplate &builtin() {
    static const cdrmix::ChatTemplate t = cdrmix::chat_template_from_spec("cdrmix", "test");
    return t;
}

const char *kSimple =
    R"({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+3?"}, {"role": "assistant", "content": "5"}]})";

const char *kToolConversation = R"({"tools": [{"name": "calculator", "parameters": {"type": "object"}}],
  "messages": [{"role": "user", "content": "2+3?"},
               {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "calculator", "arguments": "{\"expression\": \"2+3\"}"}}]},
               {"role": "tool", "content": "5"},
               {"role": "assistant", "content": "It is 5."}]})";

std::vector<std::pair<std::string, bool>> segments(const char *record, bool tool_loss) {
    std::vector<std::pair<std::string, bool>> out;
    for (const auto &s : cdrmix::render_conversation(builtin(), cdrmix::parse_conversation(Json::parse(record), "test"),
                                                     tool_loss))
        out.emplace_back(s.text, s.loss);
    return out;
}

std::shared_ptr<cdrmix::DataSource> make_source(const Json &cfg) {
    return cdrmix::Registry::global().create_data_source(cdrmix::Config(cfg, "data", "test"));
}

std::string write_lines(const fs::path &path, const std::vector<std::string> &lines) {
    std::ofstream out(path, std::ios::binary);
    for (const auto &l : lines) out << l << "\n";
    return path.string();
}

TEST(ChatTemplate, LossIsOnTheAssistantSpanOnly) {
    using V = std::vector<std::pair<std::string, bool>>;
    EXPECT_EQ(segments(kSimple, true),
              (V{{"<|system|>\nBe brief.\n<|user|>\n2+3?\n<|assistant|>\n", false}, {"5<|end|>\n", true}}));
    const std::string call = R"(<tool_call>{"arguments":{"expression":"2+3"},"name":"calculator"}</tool_call>)" "\n";
    const std::string tools = R"(<|tools|>)" "\n" R"([{"name":"calculator","parameters":{"type":"object"}}])" "\n";
    EXPECT_EQ(segments(kToolConversation, true),
              (V{{tools + "<|user|>\n2+3?\n<|assistant|>\n", false},
                 {call + "<|end|>\n", true},
                 {"<|tool|>\n5\n<|assistant|>\n", false},
                 {"It is 5.<|end|>\n", true}}));
    // Without loss on tool calls, the call joins the prompt; the end of the turn still has loss.
    EXPECT_EQ(segments(kToolConversation, false),
              (V{{tools + "<|user|>\n2+3?\n<|assistant|>\n" + call, false},
                 {"<|end|>\n", true},
                 {"<|tool|>\n5\n<|assistant|>\n", false},
                 {"It is 5.<|end|>\n", true}}));
    const auto c = cdrmix::parse_conversation(Json::parse(kSimple), "test");
    EXPECT_EQ(cdrmix::render_prompt(builtin(), c), "<|system|>\nBe brief.\n<|user|>\n2+3?\n<|assistant|>\n5<|end|>\n<|assistant|>\n");
}

TEST(ChatTemplate, BadRecordsNameTheField) {
    auto err = [](const char *record) {
        return cdrmix::test::error_of([&] { cdrmix::parse_conversation(Json::parse(record), "f.jsonl:7"); });
    };
    EXPECT_EQ(err(R"({"text": "hi"})"), "f.jsonl:7: the record has no 'messages' field");
    EXPECT_EQ(err(R"({"messages": [{"role": "user", "content": "a"}, {"role": "bot", "content": "x"}]})"),
              "f.jsonl:7: messages[1].role: 'bot' is not a role (system, user, assistant, tool)");
    EXPECT_EQ(err(R"({"messages": [{"role": "asistant", "content": "x"}]})"),
              "f.jsonl:7: messages[0].role: 'asistant' is not a role (system, user, assistant, tool); did you mean 'assistant'?");
    EXPECT_EQ(err(R"({"messages": [{"role": "user"}]})"), "f.jsonl:7: messages[0].content: missing or not a string");
    EXPECT_EQ(err(R"({"messages": [{"role": "user", "content": "a", "tool_calls": []}]})"),
              "f.jsonl:7: messages[0].tool_calls: only an assistant message makes tool calls");
    EXPECT_EQ(err(R"({"messages": [{"role": "assistant", "tool_calls": [{"arguments": {}}]}]})"),
              "f.jsonl:7: messages[0].tool_calls[0]: the tool call has no string 'name'");
    EXPECT_EQ(err(R"({"messages": []})"), "f.jsonl:7: messages: must be a non-empty list");
}

TEST(ChatTemplate, TemplateFileIsReadAndChecked) {
    const fs::path dir = cdrmix::test::scratch_dir("chat_template");
    std::string yaml;
    for (const char *part : {"system", "user", "assistant", "tool", "tools", "tool_call"})
        yaml += std::string(part) + ": {prefix: \"[" + part + "]\", suffix: \"[/" + part + "]\"}\n";
    write_lines(dir / "t.yaml", {"name: brackets", yaml});
    const auto t = cdrmix::chat_template_from_spec((dir / "t.yaml").string(), "test");
    EXPECT_EQ(t.name, "brackets");
    const auto c = cdrmix::parse_conversation(Json::parse(kSimple), "test");
    const auto s = cdrmix::render_conversation(t, c, true);
    ASSERT_EQ(s.size(), 2u);
    EXPECT_EQ(s[0].text, "[system]Be brief.[/system][user]2+3?[/user][assistant]");
    EXPECT_EQ(s[1].text, "5[/assistant]");

    write_lines(dir / "missing.yaml", {"user: {prefix: a, suffix: b}"});
    EXPECT_NE(cdrmix::test::error_of([&] { cdrmix::chat_template_from_spec((dir / "missing.yaml").string(), "test"); })
                  .find("key 'system' is missing"),
              std::string::npos);
    write_lines(dir / "typo.yaml", {yaml + "asistant: {prefix: a, suffix: b}"});
    EXPECT_NE(cdrmix::test::error_of([&] { cdrmix::chat_template_from_spec((dir / "typo.yaml").string(), "test"); })
                  .find("unknown key 'asistant' (keys: name, system, user, assistant, tool, tools, tool_call); did you mean 'assistant'?"),
              std::string::npos);
    EXPECT_NE(cdrmix::test::error_of([] { cdrmix::chat_template_from_spec("cdrmx", "data"); })
                  .find("data: key 'template': 'cdrmx' is neither a built-in template (cdrmix) nor a template file; did you mean 'cdrmix'?"),
              std::string::npos);
}

TEST(ChatSource, MaskCoversTheAssistantTokensOfEachWindow) {
    const fs::path dir = cdrmix::test::scratch_dir("chat_source");
    const std::string train = write_lines(dir / "train.jsonl", std::vector<std::string>(6, kSimple));
    const std::string val = write_lines(dir / "val.jsonl", {kSimple, kSimple});
    auto data = make_source({{"type", "chat"}, {"path", train}, {"val_path", val}, {"shuffle", false}});
    const std::string prompt = "<|system|>\nBe brief.\n<|user|>\n2+3?\n<|assistant|>\n", answer = "5<|end|>\n";
    const int64_t P = int64_t(prompt.size()), L = P + int64_t(answer.size());
    const at::Tensor batch = data->next_batch(Split::Train, 2, L);
    const at::Tensor mask = cdrmix::last_loss_mask(*data);
    ASSERT_EQ(mask.sizes(), (std::vector<int64_t>{2, L}));
    // Row 0 holds the whole first conversation and the first token of the second.
    std::vector<int64_t> row(batch[0].data_ptr<int64_t>(), batch[0].data_ptr<int64_t>() + L + 1);
    EXPECT_EQ(data->tokenizer()->decode(row), prompt + answer + "<");
    for (int64_t r = 0; r < 2; ++r)
        for (int64_t t = 0; t < L; ++t) {
            const int64_t i = (r * L + t + 1) % L; // the target's offset inside its conversation
            EXPECT_EQ(mask[r][t].item<float>(), (i >= P && i < L) ? 1.0f : 0.0f) << "row " << r << " target " << t;
        }
    EXPECT_EQ(mask.sum().item<float>(), 2.0f * float(answer.size()));
    // The position restores tokens and mask together.
    const Json pos = data->position();
    const at::Tensor next = data->next_batch(Split::Train, 1, 16), next_mask = cdrmix::last_loss_mask(*data);
    auto again = make_source({{"type", "chat"}, {"path", train}, {"val_path", val}, {"shuffle", false}});
    again->restore(pos);
    EXPECT_TRUE(again->next_batch(Split::Train, 1, 16).equal(next));
    EXPECT_TRUE(cdrmix::last_loss_mask(*again).equal(next_mask));
    // A source without a mask has none.
    write_lines(dir / "plain.txt", {"plain text for a plain source"});
    auto plain = make_source({{"type", "text"}, {"path", (dir / "plain.txt").string()}, {"tokenizer", "byte"}});
    plain->next_batch(Split::Train, 1, 4);
    EXPECT_FALSE(cdrmix::last_loss_mask(*plain).defined());
}

TEST(ChatSource, MixHandsOnItsMembersMasks) {
    const fs::path dir = cdrmix::test::scratch_dir("chat_mix");
    const std::string chat = write_lines(dir / "chat.jsonl", std::vector<std::string>(20, kSimple));
    write_lines(dir / "plain.txt", {std::string(2000, 'x')});
    const Json text = {{"weight", 0.5}, {"type", "text"}, {"path", (dir / "plain.txt").string()}, {"tokenizer", "byte"}};
    const Json masked = {{"weight", 0.5}, {"type", "chat"}, {"path", chat}, {"shuffle", false}};
    auto mix = make_source({{"type", "mix"}, {"sources", {text, masked}}});
    const at::Tensor batch = mix->next_batch(Split::Train, 16, 12);
    const at::Tensor mask = cdrmix::last_loss_mask(*mix);
    ASSERT_TRUE(mask.defined());
    ASSERT_EQ(mask.sizes(), (std::vector<int64_t>{16, 12}));
    int64_t text_rows = 0, chat_rows = 0;
    for (int64_t r = 0; r < 16; ++r) {
        if ((batch[r] == 'x').all().item<bool>()) {
            ++text_rows;
            EXPECT_TRUE(mask[r].eq(1).all().item<bool>()) << "a text row trains on every target";
        } else {
            ++chat_rows;
            // A chat row's targets are masked as the chat source masks them: not all kept.
            EXPECT_LT(mask[r].sum().item<float>(), 12.0f) << "row " << r;
        }
    }
    EXPECT_GT(text_rows, 0);
    EXPECT_GT(chat_rows, 0);
    // Without a masked member there is no mask.
    auto plain = make_source({{"type", "mix"}, {"sources", {text}}});
    plain->next_batch(Split::Train, 2, 12);
    EXPECT_FALSE(cdrmix::last_loss_mask(*plain).defined());
}

TEST(ChatSource, BadLinesFailWithTheirNumberOrAreSkipped) {
    const fs::path dir = cdrmix::test::scratch_dir("chat_bad");
    const std::string train = write_lines(
        dir / "train.jsonl", {kSimple, R"({"messages": [{"role": "bot", "content": "x"}]})", "", R"({"messages": [{"role": "user"}]})",
                              "{not json", kSimple});
    const std::string val = write_lines(dir / "val.jsonl", {kSimple});
    const Json cfg = {{"type", "chat"}, {"path", train}, {"val_path", val}};
    const std::string e = cdrmix::test::error_of([&] { make_source(cfg); });
    EXPECT_EQ(e, train + ":2: messages[0].role: 'bot' is not a role (system, user, assistant, tool)");
    Json skip = cfg;
    skip["on_error"] = "skip";
    auto data = make_source(skip);
    EXPECT_NE(data->describe().find("3 conversation(s)"), std::string::npos) << data->describe();
    EXPECT_NE(data->describe().find("3 malformed line(s) skipped"), std::string::npos) << data->describe();
    Json typo = cfg;
    typo["on_error"] = "skipp";
    EXPECT_NE(cdrmix::test::error_of([&] { make_source(typo); }).find("on_error"), std::string::npos);
}

TEST(MaskedLoss, EqualsTheMeanOverKeptTargetsComputedByHand) {
    torch::manual_seed(3);
    cdrmix::Model model(cdrmix::ModelSpec::from_json(cdrmix::test::tiny_model_spec(256), "test"), cdrmix::Registry::global());
    const torch::Tensor batch = torch::randint(0, 256, {3, 11}, torch::kInt64);
    const torch::Tensor mask = (torch::rand({3, 10}) > 0.6).to(torch::kFloat32);
    ASSERT_GT(mask.sum().item<float>(), 0);
    cdrmix::ForwardContext ctx;
    const torch::Tensor logp = torch::log_softmax(model.forward(batch.slice(1, 0, 10), nullptr, ctx), -1);
    double sum = 0, kept = 0;
    for (int64_t b = 0; b < 3; ++b)
        for (int64_t t = 0; t < 10; ++t)
            if (mask[b][t].item<float>() > 0) {
                sum -= logp[b][t][batch[b][t + 1].item<int64_t>()].item<double>();
                kept += 1;
            }
    EXPECT_NEAR(cdrmix::masked_loss(model, batch, mask).ce.item<double>(), sum / kept, 1e-5);
    EXPECT_EQ(cdrmix::loss_token_count(batch, mask), int64_t(kept));
    // No mask: the plain mean over every target.
    EXPECT_NEAR(cdrmix::masked_loss(model, batch, torch::Tensor()).ce.item<double>(), model.loss(batch).ce.item<double>(), 1e-7);
    EXPECT_NEAR(cdrmix::masked_loss(model, batch, torch::ones({3, 10})).ce.item<double>(), model.loss(batch).ce.item<double>(), 1e-5);
    // Nothing kept: zero, not 0/0.
    EXPECT_EQ(cdrmix::masked_loss(model, batch, torch::zeros({3, 10})).ce.item<double>(), 0.0);
    EXPECT_NE(cdrmix::test::error_of([&] { cdrmix::masked_loss(model, batch, torch::ones({3, 9})); }).find("loss mask is 3 x 9"),
              std::string::npos);
}

// Conversations of different lengths, so micro-batches keep different numbers of targets.
std::string varied_conversations(const fs::path &path, int n) {
    std::vector<std::string> lines;
    for (int i = 0; i < n; ++i) {
        const std::string answer(size_t(1 + (i * 7) % 23), char('a' + i % 26));
        lines.push_back(Json{{"messages",
                              {{{"role", "user"}, {"content", "say " + std::to_string(i)}},
                               {{"role", "assistant"}, {"content", answer}}}}}
                            .dump());
    }
    return write_lines(path, lines);
}

std::vector<Json> train_steps(const std::shared_ptr<cdrmix::DataSource> &data, int64_t batch, int64_t accum) {
    torch::manual_seed(5);
    auto model = std::make_shared<cdrmix::Model>(cdrmix::ModelSpec::from_json(cdrmix::test::tiny_model_spec(256), "test"),
                                                 cdrmix::Registry::global());
    const auto c = cdrmix::TrainConfig::from_config(
        cdrmix::Config(Json{{"steps", 2}, {"batch_size", batch}, {"grad_accum", accum}, {"seq_len", 24}, {"warmup_steps", 1},
                            {"eval_every", 2}, {"eval_batches", 2}, {"lr", 1e-2}},
                       "trainer", "test"));
    cdrmix::MetricsBus bus;
    cdrmix::Trainer trainer(model, data, c, bus, "");
    std::vector<Json> records;
    cdrmix::TrainCallbacks cb;
    cb.on_step = [&](const Json &r) { return records.push_back(r), true; };
    cb.on_eval = [&](const Json &r) { return records.push_back(r), true; };
    trainer.run(cb);
    return records;
}

TEST(MaskedLoss, AccumulationWeighsMicroBatchesByTheirKeptTargets) {
    const fs::path dir = cdrmix::test::scratch_dir("chat_accum");
    const Json cfg = {{"type", "chat"}, {"path", varied_conversations(dir / "train.jsonl", 40)},
                      {"val_path", varied_conversations(dir / "val.jsonl", 6)}, {"shuffle", false}};
    const auto whole = train_steps(make_source(cfg), 4, 1), split = train_steps(make_source(cfg), 2, 2);
    ASSERT_EQ(whole.size(), 3u); // two steps and an eval
    ASSERT_EQ(split.size(), 3u);
    for (size_t i = 0; i < 2; ++i) {
        EXPECT_NEAR(whole[i]["loss"].get<double>(), split[i]["loss"].get<double>(), 1e-4) << "step " << i + 1;
        EXPECT_EQ(whole[i]["loss_tokens"], split[i]["loss_tokens"]);
        EXPECT_LT(whole[i]["loss_tokens"].get<int64_t>(), whole[i]["tokens"].get<int64_t>() / (i + 1));
    }
    // The eval counts the val targets with loss, and its loss is their mean.
    auto data = make_source(cfg);
    int64_t kept = 0;
    for (int i = 0; i < 2; ++i) {
        data->next_batch(Split::Val, 4, 24);
        kept += int64_t(cdrmix::last_loss_mask(*data).sum().item<float>());
    }
    EXPECT_EQ(whole[2]["val_tokens"].get<int64_t>(), kept);
}

cdrmix::ToolSet tools() {
    return cdrmix::ToolSet(Json::parse(R"([
      {"name": "calculator", "description": "evaluate arithmetic",
       "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"],
                      "additionalProperties": false}},
      {"type": "function", "function": {"name": "convert",
       "parameters": {"type": "object", "properties": {"value": {"type": "number"}, "unit": {"enum": ["km", "mi"]}},
                      "required": ["value", "unit"]}}}])"),
                           "tools.json");
}

TEST(ToolCalls, SchemaAcceptsAndRejectsTheRightCalls) {
    const cdrmix::ToolSet t = tools();
    EXPECT_TRUE(t.check(R"({"name": "calculator", "arguments": {"expression": "2+3"}})").valid);
    EXPECT_TRUE(t.check(R"({"name": "convert", "arguments": {"value": 3.5, "unit": "km"}})").valid);
    auto reason = [&](const std::string &text) {
        const auto c = t.check(text);
        EXPECT_FALSE(c.valid) << text;
        return c.reason;
    };
    EXPECT_NE(reason(R"({"name": "calculator", "arguments": {"expression": 5}})").find("'calculator' arguments do not match its schema"),
              std::string::npos);
    EXPECT_NE(reason(R"({"name": "calculator", "arguments": {}})").find("expression"), std::string::npos);
    EXPECT_NE(reason(R"({"name": "calculator", "arguments": {"expression": "1", "extra": 1}})").find("do not match"),
              std::string::npos);
    EXPECT_NE(reason(R"({"name": "convert", "arguments": {"value": 1, "unit": "m"}})").find("do not match"), std::string::npos);
    EXPECT_EQ(reason(R"({"name": "calculater", "arguments": {}})"), "no tool 'calculater'; did you mean 'calculator'?");
    EXPECT_EQ(reason(R"({"name": "weather", "arguments": {}})"), "no tool 'weather'");
    EXPECT_EQ(reason(R"({"arguments": {}})"), "tool call: call: the tool call has no string 'name'");
    EXPECT_EQ(reason(R"({"name": "calculator", "arguments": [1]})"), "tool call: call.arguments: must be an object");
    EXPECT_EQ(reason(R"({"name": "calculator", "arguments": {"expression": "1")").rfind("not JSON: ", 0), 0u);
}

TEST(ToolCalls, FoundBetweenTheTemplateMarkers) {
    const cdrmix::ToolSet t = tools();
    const auto calls = cdrmix::find_tool_calls(
        builtin(),
        R"(Let me work it out. <tool_call>{"name": "calculator", "arguments": {"expression": "6*7"}}</tool_call>
<tool_call>{"name": "convert", "arguments": {"value": "x"}}</tool_call><tool_call>{"name": "calc)",
        t);
    ASSERT_EQ(calls.size(), 3u);
    EXPECT_TRUE(calls[0].valid);
    EXPECT_EQ(calls[0].call["arguments"]["expression"], "6*7");
    EXPECT_FALSE(calls[1].valid);
    EXPECT_EQ(calls[1].call["name"], "convert");
    EXPECT_FALSE(calls[2].valid);
    EXPECT_EQ(calls[2].reason, "no closing marker '</tool_call>'");
    EXPECT_TRUE(cdrmix::find_tool_calls(builtin(), "no calls here", t).empty());
}

TEST(ToolCalls, BadDeclarationsAreRefused) {
    EXPECT_EQ(cdrmix::test::error_of([] { cdrmix::ToolSet(Json::parse(R"([{"description": "x"}])"), "t.json"); }),
              "t.json: tools[0]: a tool declaration has a string 'name'");
    EXPECT_EQ(cdrmix::test::error_of([] { cdrmix::ToolSet(Json::parse(R"([{"name": "a"}, {"name": "a"}])"), "t.json"); }),
              "t.json: tools[1]: tool 'a' is declared twice");
    EXPECT_NE(cdrmix::test::error_of([] {
                  cdrmix::ToolSet(Json::parse(R"([{"name": "a", "parameters": {"type": 5}}])"), "t.json");
              }).find("t.json: tools[0] ('a'): its 'parameters' is not a JSON Schema"),
              std::string::npos);
    // valijson's parser recursed until the stack overflowed on a reference to the root (found by fuzz_chat).
    EXPECT_EQ(cdrmix::test::error_of([] { cdrmix::ToolSet(Json::parse(R"([{"name": "a", "parameters": {"$ref": "#"}}])"), "t.json"); }),
              "t.json: tools[0] ('a'): its 'parameters' uses '$ref', which tool declarations do not support (write the "
              "referenced schema out)");
    Json deep = {{"type", "object"}};
    for (int i = 0; i < 40; ++i) deep = {{"type", "object"}, {"properties", {{"x", deep}}}};
    EXPECT_NE(cdrmix::test::error_of([&] { cdrmix::ToolSet(Json::array({{{"name", "a"}, {"parameters", deep}}}), "t.json"); })
                  .find("its 'parameters' nests deeper than 64 levels"),
              std::string::npos);
}

} // namespace
