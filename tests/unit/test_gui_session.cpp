// The dashboard's run controls and sampler against a real training script, no
// window: pause holds training at a step boundary, sampling works while paused
// and while training, resume goes on, stop ends the run with a checkpoint.
#include "cli/checkpoint_args.hpp"
#include "cli/gui_session.hpp"
#include "core/files.hpp"
#include "model/routing_inspector.hpp"
#include "train/checkpoint.hpp"

#include <cdrmix/registry.hpp>

#include <data/inspection.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include <unistd.h>

namespace fs = std::filesystem;
using namespace cdrmix;

namespace {

const char *kScript = R"(
local data = cdrmix.data{ type = "text", path = "/usr/share/games/fortunes/fortunes", tokenizer = "char" }
local model = cdrmix.model({
  hidden_size = 32, num_layers = 2, seq_length = 16,
  mixer = { type = "rwkv7_time_mix", head_size = 16 }, ffn = { type = "rwkv_channel_mix" },
  moe_every = 2, num_experts = 4, top_k = 2, router = { type = "topk" },
  expert = { type = "rwkv_channel_mix", expansion = 2 },
}, { vocab_size = data:vocab_size() })
cdrmix.trainer{ model = model, data = data, name = "session", steps = 100000, batch_size = 2, seq_len = 16,
                eval_every = 0, eval_batches = 1, log_every = 100000 }:run()
)";

bool wait_for(const std::function<bool()> &done, double seconds = 60) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (!done()) {
        if (std::chrono::steady_clock::now() > until) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
}

struct Records {
    int64_t last_step = 0, checkpoints = 0, ends = 0;
    std::vector<Json> swaps;
    void take(ScriptSession &s) {
        for (const auto &r : s.take_records()) {
            const std::string e = r.value("event", "");
            if (e == "step") last_step = r.value("step", int64_t(0));
            checkpoints += e == "checkpoint";
            ends += e == "end";
            if (e == "swap") swaps.push_back(r);
        }
    }
};

struct SessionDir {
    fs::path dir = fs::temp_directory_path() / ("cdrmix_gui_session_" + std::to_string(::getpid()));
    SessionDir() {
        cdrmix::remove_tree(dir);
        fs::create_directories(dir);
        std::ofstream(dir / "session.lua") << kScript;
    }
    ~SessionDir() { cdrmix::remove_tree(dir); }
    lua::RunOptions options() const {
        lua::RunOptions o;
        o.script = (dir / "session.lua").string();
        o.runs_root = (dir / "runs").string();
        o.headless = true;
        return o;
    }
};

ui::Inspection inspect_and_wait(ScriptSession &s, const std::string &text) {
    s.inspect(text);
    EXPECT_TRUE(s.inspect_view().busy);
    EXPECT_TRUE(wait_for([&] { return !s.inspect_view().busy; }));
    const ui::InspectView v = s.inspect_view();
    EXPECT_EQ(v.status.rfind("routing with the weights of step ", 0), 0u) << v.status;
    return ui::parse_inspection(v.routing);
}

ui::SampleView sample_and_wait(ScriptSession &s) {
    s.sample({"The ", 12, 0.0f, 0});
    EXPECT_TRUE(s.sample_view().busy); // waiting for weights or generating, from the moment it is asked
    EXPECT_TRUE(wait_for([&] { return !s.sample_view().busy; }));
    return s.sample_view();
}

} // namespace

TEST(GuiSession, PauseSampleResumeStop) {
    const SessionDir tmp;
    const fs::path &dir = tmp.dir;
    ScriptSession session(tmp.options());
    Records rec;
    session.start();
    ASSERT_TRUE(wait_for([&] { rec.take(session); return rec.last_step >= 3; }));

    session.pause();
    ASSERT_TRUE(wait_for([&] { return session.state() == "paused"; }));
    rec.take(session);
    const int64_t paused_at = rec.last_step;
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    rec.take(session);
    EXPECT_EQ(rec.last_step, paused_at) << "training went on while paused";

    ui::SampleView v = sample_and_wait(session);
    EXPECT_EQ(v.text.rfind("The ", 0), 0u) << v.text;
    EXPECT_GT(v.text.size(), 4u);
    EXPECT_EQ(v.status, "weights of step " + std::to_string(paused_at));
    rec.take(session);
    EXPECT_EQ(rec.last_step, paused_at) << "sampling while paused must not train";

    session.resume();
    ASSERT_TRUE(wait_for([&] { rec.take(session); return rec.last_step > paused_at + 2; }));
    v = sample_and_wait(session); // while training: weights copied at the next step boundary
    const int64_t sampled_at = std::stoll(v.status.substr(v.status.rfind(' ') + 1));
    EXPECT_GT(sampled_at, paused_at);

    session.stop();
    EXPECT_EQ(session.join(), 0);
    rec.take(session);
    EXPECT_EQ(rec.ends, 1);
    EXPECT_GE(rec.checkpoints, 1);
    EXPECT_LT(rec.last_step, 100000);
    EXPECT_EQ(session.state(), "finished");
    bool found = false;
    for (const auto &run : fs::directory_iterator(dir / "runs"))
        found |= fs::exists(run.path() / "checkpoints" / "latest" / "model.safetensors");
    EXPECT_TRUE(found) << "stop writes a checkpoint";
}

// The dashboard's inspector and swap controls against a running script: the
// routing comes from the live weights in the dashboard's own format, a swap
// lands at a step boundary with its record, and a bad request leaves an
// outcome saying why while training goes on.
TEST(GuiSession, InspectAndSwapRouter) {
    const SessionDir tmp;
    ScriptSession session(tmp.options());
    Records rec;
    session.start();
    ASSERT_TRUE(wait_for([&] { rec.take(session); return rec.last_step >= 2; }));

    const ui::Inspection before = inspect_and_wait(session, "The cat");
    EXPECT_EQ(before.layers, (std::vector<int64_t>{1})); // moe_every = 2 of 2 layers
    EXPECT_EQ(before.num_experts, 4);
    ASSERT_EQ(before.tokens.size(), 7u); // the char tokenizer: one token per character
    for (const auto &t : before.tokens) {
        ASSERT_EQ(t.layers.size(), 1u);
        EXPECT_LE(t.layers[0].size(), 2u) << "top_k = 2";
    }
    EXPECT_EQ(before.tokens[4].text, "c");

    const auto types = session.router_types();
    ASSERT_NE(std::find(types.begin(), types.end(), "sinkhorn"), types.end());
    session.swap_router({-1, "sinkhorn", ""});
    ASSERT_TRUE(wait_for([&] { rec.take(session); return !rec.swaps.empty(); }));
    EXPECT_EQ(rec.swaps[0]["router"]["type"], "sinkhorn");
    EXPECT_EQ(rec.swaps[0]["layers"], Json::array({1}));
    EXPECT_EQ(session.swap_outcome().rfind("swapped layers [1] to ", 0), 0u) << session.swap_outcome();
    const ui::Inspection after = inspect_and_wait(session, "The cat"); // a model copy with the new router
    EXPECT_EQ(after.tokens.size(), 7u);

    session.swap_router({-1, "topk", "not json"});
    EXPECT_EQ(session.swap_outcome().rfind("swap not sent: the options are not a JSON object", 0), 0u);
    session.swap_router({0, "topk", ""}); // layer 0 has no router
    ASSERT_TRUE(wait_for([&] { return session.swap_outcome().rfind("swap failed: ", 0) == 0; }))
        << session.swap_outcome();
    EXPECT_NE(session.swap_outcome().find("layer 0 has no router"), std::string::npos) << session.swap_outcome();
    rec.take(session);
    const int64_t failed_at = rec.last_step;
    ASSERT_TRUE(wait_for([&] { rec.take(session); return rec.last_step > failed_at + 1; })) << "training went on";
    EXPECT_EQ(rec.swaps.size(), 1u);

    session.stop();
    EXPECT_EQ(session.join(), 0);
}

// The dashboard's specialisation view counts with the session's final weights
// over a fresh source made from the trainer's data config: the same counts as
// `cdrmix inspect --specialisation` gives from the checkpoint the run ended with.
TEST(GuiSession, SpecialisationMatchesTheCheckpointsCount) {
    const SessionDir tmp;
    std::string script = kScript;
    script.replace(script.find("steps = 100000"), 14, "steps = 3");
    std::ofstream(tmp.dir / "session.lua") << script;
    ScriptSession session(tmp.options());
    session.start();
    ASSERT_EQ(session.join(), 0);

    session.specialise({3, false, 5});
    ASSERT_TRUE(wait_for([&] { return !session.specialisation_view().busy; }));
    const ui::SpecialisationView v = session.specialisation_view();
    EXPECT_EQ(v.status, "over 96 val tokens with the weights of step 3"); // 3 batches of 2 x 16
    const ui::Specialisation shown = ui::parse_specialisation(v.specialisation);
    EXPECT_EQ(shown.step, 3);
    ASSERT_EQ(shown.layers.size(), 1u);
    EXPECT_EQ(shown.layers[0].slots(), 96 * 2) << "top_k = 2, no capacity limit";

    fs::path run;
    for (const auto &r : fs::directory_iterator(tmp.dir / "runs")) run = r.path();
    const LoadedCheckpoint ckpt = load_checkpoint((run / "checkpoints" / "latest").string(), Registry::global());
    auto data = checkpoint_data(ckpt, {}, "test");
    ExpertSpecialisation counts(ckpt.tokenizer->vocab_size());
    counts.add_split(*ckpt.model, *data, Split::Val, 3, 2, 16);
    EXPECT_EQ(v.specialisation["layers"], ExpertSpecialisation::to_json(counts.summary(*ckpt.tokenizer, 5), *ckpt.tokenizer));
}
