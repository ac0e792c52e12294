#include "cli/eval_generate.hpp"

#include "cli/checkpoint_args.hpp"

#include "core/yaml_config.hpp"
#include "model/sampler.hpp"
#include "train/checkpoint.hpp"
#include "train/evaluate.hpp"

#include <cdrmix/error.hpp>
#include <cdrmix/registry.hpp>

#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <random>

namespace cdrmix {

EvalGenerateCommands::EvalGenerateCommands(CLI::App &app) {
    eval_ = app.add_subcommand("eval", "Token-weighted loss and perplexity of a checkpoint on a data split");
    eval_->add_option("checkpoint", checkpoint_, "Checkpoint folder, run folder, or auto")->required();
    eval_->add_option("--data", data_, "A data-source YAML file and/or key=value settings (default: the run's data)");
    eval_->add_option("--split", split_, "val or train (default val)")->check(CLI::IsMember({"val", "train"}));
    eval_->add_option("--batch-size", batch_size_, "Sequences per batch (default: the run's batch_size)");
    eval_->add_option("--seq-len", seq_len_, "Tokens per sequence (default: the run's seq_len)");
    eval_->add_option("--batches", batches_, "Batches to read (default: enough to cover the split once)");
    eval_->add_option("--runs-dir", runs_dir_, "Where `auto` looks (default: runs)");
    eval_->add_flag("--json", json_, "Print the result as JSON");

    generate_ = app.add_subcommand("generate", "Stream text sampled from a checkpoint");
    generate_->add_option("checkpoint", checkpoint_, "Checkpoint folder, run folder, or auto")->required();
    generate_->add_option("--prompt", prompt_, "Text to continue")->required();
    generate_->add_option("--temperature", temperature_, "Sampling temperature; 0 is greedy (default 0.8)");
    generate_->add_option("--top-k", top_k_, "Keep the k most likely tokens; 0 is off (default)");
    generate_->add_option("--top-p", top_p_, "Keep the smallest set of tokens holding this mass; 1 is off (default)");
    generate_->add_option("--max-tokens", max_tokens_, "Tokens to generate (default 200)");
    generate_->add_option("--seed", seed_, "Sampling seed (default: random)");
    generate_->add_option("--stop", stop_, "End once the text contains this (repeatable)");
    generate_->add_option("--runs-dir", runs_dir_, "Where `auto` looks (default: runs)");
}

int EvalGenerateCommands::run() const { return *eval_ ? run_eval() : run_generate(); }

int EvalGenerateCommands::run_eval() const {
    const LoadedCheckpoint ckpt = load_checkpoint(checkpoint_dir(checkpoint_, runs_dir_), Registry::global());
    auto data = checkpoint_data(ckpt, data_, "eval");
    const Split split = split_ == "train" ? Split::Train : Split::Val;
    const int64_t B = batch_size_ > 0 ? batch_size_ : saved_train_int(ckpt, "batch_size", 8);
    const int64_t T = seq_len_ > 0 ? seq_len_ : saved_train_int(ckpt, "seq_len", 128);
    const int64_t n = batches_ > 0 ? batches_ : batches_to_cover(data->num_tokens(split), B, T);
    const EvalResult r = evaluate_split(*ckpt.model, *data, split, B, T, n);
    const int64_t step = ckpt.trainer_state.value("step", int64_t(-1));
    if (json_) {
        Json j = {{"checkpoint", ckpt.dir}, {"step", step},         {"split", split_},       {"loss", r.loss},
                  {"perplexity", r.perplexity}, {"tokens", r.tokens}, {"batches", r.batches}, {"batch_size", B},
                  {"seq_len", T}};
        std::printf("%s\n", j.dump().c_str());
    } else {
        std::printf("checkpoint %s (step %lld)\n", ckpt.dir.c_str(), static_cast<long long>(step));
        std::printf("%s: loss %.4f, perplexity %.3f over %lld tokens (%lld batches of %lld x %lld)\n", split_.c_str(),
                    r.loss, r.perplexity, static_cast<long long>(r.tokens), static_cast<long long>(r.batches),
                    static_cast<long long>(B), static_cast<long long>(T));
    }
    return 0;
}

int EvalGenerateCommands::run_generate() const {
    const LoadedCheckpoint ckpt = load_checkpoint(checkpoint_dir(checkpoint_, runs_dir_), Registry::global());
    SampleOptions o;
    o.max_tokens = max_tokens_;
    o.temperature = temperature_;
    o.top_k = top_k_;
    o.top_p = top_p_;
    o.seed = seed_ >= 0 ? static_cast<uint64_t>(seed_) : std::random_device{}();
    o.stop = stop_;
    if (o.max_tokens < 0 || o.top_k < 0 || o.top_p <= 0 || o.top_p > 1 || o.temperature < 0)
        throw Error("generate: need --max-tokens >= 0, --top-k >= 0, 0 < --top-p <= 1 and --temperature >= 0");
    try {
        ckpt.tokenizer->encode(prompt_);
    } catch (const std::exception &e) {
        throw Error("generate: --prompt cannot be encoded by the checkpoint's tokenizer (" +
                    describe_tokenizer(*ckpt.tokenizer) + "): " + e.what());
    }
    std::fputs(prompt_.c_str(), stdout);
    std::fflush(stdout);
    generate(*ckpt.model, *ckpt.tokenizer, prompt_, o, [](const std::string &piece) {
        std::fwrite(piece.data(), 1, piece.size(), stdout);
        std::fflush(stdout); // one token at a time, as it is produced
    });
    std::fputs("\n", stdout);
    return 0;
}

} // namespace cdrmix
