// The dashboard's run controls and sampler against a real training script, no
// window: pause holds training at a step boundary, sampling works while paused
// and while training, resume goes on, stop ends the run with a checkpoint.
#include "cli/gui_session.hpp"
#include "core/files.hpp"

#include <gtest/gtest.h>

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
    void take(ScriptSession &s) {
        for (const auto &r : s.take_records()) {
            const std::string e = r.value("event", "");
            if (e == "step") last_step = r.value("step", int64_t(0));
            checkpoints += e == "checkpoint";
            ends += e == "end";
        }
    }
};

ui::SampleView sample_and_wait(ScriptSession &s) {
    s.sample({"The ", 12, 0.0f, 0});
    EXPECT_TRUE(s.sample_view().busy); // waiting for weights or generating, from the moment it is asked
    EXPECT_TRUE(wait_for([&] { return !s.sample_view().busy; }));
    return s.sample_view();
}

} // namespace

TEST(GuiSession, PauseSampleResumeStop) {
    const fs::path dir = fs::temp_directory_path() / ("cdrmix_gui_session_" + std::to_string(::getpid()));
    cdrmix::remove_tree(dir);
    fs::create_directories(dir);
    std::ofstream(dir / "session.lua") << kScript;
    lua::RunOptions options;
    options.script = (dir / "session.lua").string();
    options.runs_root = (dir / "runs").string();
    options.headless = true;

    ScriptSession session(options);
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
    cdrmix::remove_tree(dir);
}
