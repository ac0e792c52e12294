// Checkpoints: one folder per save, checkpoints/step-000600/, holding
//   model.safetensors   weights under RWKV-LM names
//   model.json          the resolved model spec
//   tokenizer.json      the exact vocabulary
//   trainer_state.json  step, schedule, data position, RNG state, train config
//   optimizer.pt        AdamW moments (LibTorch archive)
//   masters.safetensors float32 master weights, when the weights are bf16 (train.weights_dtype)
//   run_config.json     the run's resolved config (data, model, train), when known
//   manifest.json       every other file's size and CRC-32C, written last
// The folder is written under a temporary name, every file and the folder are
// fsynced, and it is renamed into place; then the `latest` symlink is swapped
// atomically. A failed save removes its temporary folder, so a crash or an
// error never leaves a half-written checkpoint where a good one was.
// A folder made from other weights (`cdrmix import`, `cdrmix upcycle`) holds the
// first three files and kImportRecord (save_derived_checkpoint).
#pragma once

#include "model/model.hpp"
#include "train/safetensors.hpp"

#include <cdrmix/tokenizer.hpp>

#include <torch/optim/optimizer.h>

#include <memory>
#include <string>

namespace cdrmix {

// A checkpoint folder made from other weights (`cdrmix import`, `cdrmix
// upcycle`) holds this record of where they came from, and no training state.
inline constexpr const char *kImportRecord = "import.json";

// Writes what describes a model into dir: model.safetensors (parameters and
// buffers under the model's names), model.json (its spec) and tokenizer.json:
// the files load_checkpoint() reads.
void write_model_files(const std::string &dir, Model &model, const Tokenizer &tokenizer);
// Writes such a folder at `out` (which must not exist, or be empty): the model
// files and `record` as kImportRecord, under a temporary name renamed into
// place, so a failure leaves nothing. Returns the folder's absolute path.
std::string save_derived_checkpoint(const std::string &out, Model &model, const Tokenizer &tokenizer,
                                    const Json &record);

// The run's config in a checkpoint folder. Checkpoints written before the
// Hugging Face export called it config.json, a name that now means only a
// Hugging Face config; load_checkpoint still reads it from those.
namespace checkpoint_layout {
inline constexpr const char *run_config = "run_config.json";
inline constexpr const char *legacy_run_config = "config.json";
inline constexpr const char *masters = "masters.safetensors"; // float32 masters of bf16 weights
} // namespace checkpoint_layout

// Returns the path of the new checkpoint folder. `masters` (bf16 weights'
// float32 masters, train/master_weights.hpp) go to masters.safetensors when given.
std::string save_checkpoint(const std::string &root, int64_t step, Model &model, torch::optim::Optimizer &optimizer,
                            const Tokenizer &tokenizer, const Json &trainer_state, const Json &run_config = Json(),
                            const NamedTensors &masters = {});
// The same from weights this process assembled (a model whose experts are
// split over ranks, train/expert_state.hpp) and the spec they belong to.
std::string save_checkpoint(const std::string &root, int64_t step, const NamedTensors &weights, const Json &model_spec,
                            torch::optim::Optimizer &optimizer, const Tokenizer &tokenizer, const Json &trainer_state,
                            const Json &run_config = Json(), const NamedTensors &masters = {});

// Deletes the oldest step-* folders under root so that at most `keep` remain
// (keep <= 0: nothing is deleted). The folder `latest` points to is never deleted.
void prune_checkpoints(const std::string &root, int64_t keep);

// A checkpoint folder from what a user typed: a checkpoint folder itself, a
// folder with a `latest` link (checkpoints/), or a run folder (its
// checkpoints/latest). Where `latest` dangles, the newest complete step-*.
// Returns the real path; throws naming `spec` otherwise.
std::string resolve_checkpoint(const std::string &spec);
// The newest checkpoint (by its trainer_state.json time) under
// <runs_root>/<name>-<stamp>/checkpoints/latest (any run when name is empty), or "" when there is none.
std::string find_latest_checkpoint(const std::string &runs_root, const std::string &name);

// Checks every file against the checkpoint's manifest (size and CRC-32C);
// throws naming the first that does not match. A checkpoint written before
// manifests passes unchecked.
void verify_checkpoint(const std::string &checkpoint_dir);
// Loads model.safetensors from a checkpoint folder into model (names and shapes
// must match; non-finite weights are refused).
void load_model_weights(Model &model, const std::string &checkpoint_dir);
void load_optimizer_state(torch::optim::Optimizer &optimizer, const std::string &checkpoint_dir);
// Reads a JSON file of a checkpoint folder; throws naming the file when it is missing or malformed.
Json read_checkpoint_json(const std::string &checkpoint_dir, const std::string &file);

// The default CPU generator's state as hex text (for trainer_state.json), and back.
std::string cpu_rng_state();
void set_cpu_rng_state(const std::string &hex, const std::string &where);

// A model rebuilt from a checkpoint: spec from model.json, weights, tokenizer.
struct LoadedCheckpoint {
    std::string dir;
    std::shared_ptr<Model> model;
    std::shared_ptr<Tokenizer> tokenizer;
    Json trainer_state; // {} when the file is absent
    Json run_config;    // {} when neither run_config.json nor (older checkpoints) config.json is there
    std::string run_config_file; // the path it was read from, or would be: for messages
};
LoadedCheckpoint load_checkpoint(const std::string &checkpoint_dir, const Registry &registry);

} // namespace cdrmix
