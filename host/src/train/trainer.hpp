// The stock trainer: AdamW (weight decay on matrices only), warm-up + cosine /
// linear / constant schedule, gradient accumulation, clipping with the norm
// reported, optional bf16 autocast, periodic eval (loss and perplexity),
// periodic text samples, checkpoints (keep the newest N) and exact resume, and
// one metrics record per step. Details: docs/training.md.
#pragma once

#include "metrics/metrics.hpp"
#include "model/model.hpp"
#include "train/run_control.hpp"
#include "train/evaluate.hpp"
#include "train/schedule.hpp"

#include <cdrmix/data_source.hpp>
#include <cdrmix/schema.hpp>

#include <torch/optim/adamw.h>

#include <functional>
#include <memory>
#include <string>

namespace cdrmix {

class ModelSync;
class ExpertParallel;
class MasterWeights;
class ExpertRotation;
class OptimizerShards;
class ProcessGroup;

// The stock trainer's settings. Every key is declared once, in schema()
// (`cdrmix keys trainer`, docs/reference/trainer.md): the optimiser's keys come
// from adamw_schema(), the schedule's from schedule_schema(). Build one with
// from_config(); the members hold what the run uses.
struct TrainConfig {
    int64_t steps = 0;        // optimiser steps
    int64_t batch_size = 0;   // sequences per micro-batch
    int64_t grad_accum = 0;   // micro-batches per optimiser step
    int64_t seq_len = 0;
    // Sequence-length curriculum: over the first seq_len_warmup_steps steps the
    // train length rises from seq_len_start to seq_len (train_seq_len).
    int64_t seq_len_start = 0, seq_len_warmup_steps = 0;
    LrSchedule schedule;
    double weight_decay = 0;
    double beta1 = 0, beta2 = 0, eps = 0;
    double grad_clip = 0;     // 0: off (the norm is still reported)
    std::string autocast;     // "none" | "bf16" (after "auto" is resolved; see autocast.hpp)
    std::string weights_dtype; // "float32" | "bfloat16": bf16 weights with float32 masters (master_weights.hpp)
    int64_t eval_every = 0;   // 0: only at the end
    int64_t eval_batches = 0;
    int64_t log_every = 0;
    int64_t checkpoint_every = 0; // 0: only at the end (and on stop)
    int64_t keep_checkpoints = 0; // newest N step-* folders kept; 0: all
    int64_t sample_every = 0;     // 0: no samples
    std::string sample_prompt;
    int64_t sample_tokens = 0;
    double sample_temperature = 0;
    ActivationCheckpointing checkpoint_activations; // which layers recompute their activations in backward
    bool shard_optimizer = false; // ZeRO-1 over the data-parallel ranks (optimizer_shards.hpp)
    // Expert-at-a-time training (expert_rotation.hpp): one routed expert per MoE
    // layer trains, the others are frozen, and the active one changes every
    // expert_switch_every steps.
    bool expert_at_a_time = false;
    int64_t expert_switch_every = 0;
    uint64_t seed = 0;

    // Every key of the trainer table: the optimiser's, the schedule's and the trainer's own.
    static const Schema &schema();
    // `device`: where the model lives, which decides what autocast "auto" means.
    static TrainConfig from_config(const Config &c, c10::DeviceType device = c10::DeviceType::CPU);
    // The defaults of every key (tests and benchmarks start from these).
    static TrainConfig defaults() { return from_config(Config()); }
    // The resolved settings, under their key names (config.json, checkpoints).
    Json to_json() const { return resolved; }
    // The train sequence length at this (0-based) step: seq_len, or during the
    // curriculum seq_len_start + (seq_len - seq_len_start) * step / warmup rounded
    // down to a multiple of seq_len_start (few distinct shapes), at least seq_len_start.
    int64_t train_seq_len(int64_t step) const;
    // Whether step records of this (0-based) step carry routing statistics.
    bool logs_step(int64_t step) const;

    Json resolved = Json::object();
};

// weight_decay, beta1, beta2, eps (and lr): AdamW's keys, shared by the trainer and cdrmix.adamw{}.
const Schema &adamw_schema();
// The same without lr, for schemas that include lr_schema() themselves.
const Schema &adamw_only_schema();

// AdamW with two parameter groups: matrices (>= 2-D weights) decay, vectors do
// not. The step is fused (FusedAdamW, fused_adamw.hpp); the state is AdamW's.
std::unique_ptr<torch::optim::AdamW> make_adamw(Model &model, double lr, double weight_decay, double beta1,
                                                double beta2, double eps);
// The same over named parameters in the given order (a whole expert-parallel model, train/expert_state.hpp).
std::unique_ptr<torch::optim::AdamW> make_adamw(const std::vector<std::pair<std::string, torch::Tensor>> &named,
                                                double lr, double weight_decay, double beta1, double beta2, double eps);

// Routing statistics as the step records' `moe` list (fields::moe names), also
// what Model:loss returns to Lua.
Json router_stats_json(const std::vector<RouterStats> &stats);

// Global L2 norm of the gradients; clips them to max_norm when max_norm > 0
// (as torch::nn::utils::clip_grad_norm_, in one pass over all gradients).
double clip_gradients(Model &model, double max_norm);

struct TrainCallbacks {
    // Each returns false to stop training after the current step.
    std::function<bool(const Json &)> on_step, on_eval, on_checkpoint, on_sample;
};

class Trainer {
public:
    // checkpoint_root may be empty (no checkpoints).
    Trainer(std::shared_ptr<Model> model, std::shared_ptr<DataSource> data, TrainConfig config, MetricsBus &bus,
            std::string checkpoint_root);
    ~Trainer();

    // Continues from a checkpoint folder: weights, optimiser moments, step (and so
    // the schedule), RNG state and data position. An imported model's folder
    // (kImportRecord, no training state) gives its weights only, from step 0.
    // Call before run().
    void resume(const std::string &checkpoint_dir);
    // Runs to config.steps (or until a callback or the RunControl says stop);
    // returns the "end" record. A non-finite loss throws before the optimiser
    // step, leaving the last checkpoint as it was.
    Json run(const TrainCallbacks &callbacks = {});
    // Token-weighted mean loss over eval_batches of the val split (always the same batches).
    double evaluate();
    std::string checkpoint();
    // Replaces the router of MoE layer `layer` (every MoE layer when layer < 0)
    // between steps, keeping the experts and every other weight
    // (Model::swap_router; the new router's weights are seeded by the train
    // seed and the step). AdamW's moments carry over for every kept parameter;
    // the new router's start from zero. Publishes a `swap` record and returns
    // it. Single-process runs only (throws cdrmix::Error otherwise). May be
    // called before run(), between runs, or from a run's callbacks.
    Json swap_router(int64_t layer, const Json &router, const Registry &registry);
    // The same from a request {"layer": id or "all", "router": {...}} (the
    // dashboard's, a branch's); throws cdrmix::Error naming a malformed field.
    Json swap_router(const Json &request, const Registry &registry);
    void set_checkpoint_root(std::string root) { checkpoint_root_ = std::move(root); }
    // Written into every checkpoint as run_config.json (the run's resolved config:
    // `cdrmix eval` reads its data section).
    void set_run_config(Json config) { run_config_ = std::move(config); }
    // Polled between steps; may be null. Owned by the caller and must outlive run().
    void set_control(RunControl *control) { control_ = control; }
    // Data parallelism over `group` (a no-op for a group of one); call before
    // resume() and run(), on every rank, with the same model and a data source
    // sharded by rank. Then: rank 0's parameters are broadcast when run()
    // starts (after resume(), the ranks' weights are checked equal instead);
    // each reducing backward averages the gradients over ranks in buckets that
    // overlap it (gradient_sync.hpp), once per optimiser step; rank 0 alone
    // writes checkpoints, which hold every rank's data position; every rank
    // publishes the same step and eval records, aggregated over ranks
    // (record_fields.hpp); and the ranks agree on stopping, pausing and
    // checkpointing, so they stay in step. With shard_optimizer, AdamW's state
    // is split over the ranks (ZeRO-1). The group must outlive the trainer.
    void set_process_group(ProcessGroup *group);

    const TrainConfig &config() const { return config_; }
    int64_t step() const { return step_; }
    // Bytes of AdamW moments this process holds (with shard_optimizer, its share).
    int64_t optimizer_state_bytes() const;
    // The checkpoint written most recently by this trainer (empty if none).
    const std::string &last_checkpoint() const { return last_checkpoint_; }
    // The float32 masters the optimiser steps with weights_dtype "bfloat16"; null with "float32".
    const MasterWeights *master_weights() const { return masters_.get(); }
    // With train.expert_at_a_time, which experts train and where the others' moments are; null otherwise.
    const ExpertRotation *expert_rotation() const { return rotation_.get(); }

private:
    struct StepResult {
        double loss = 0, aux = 0, grad_norm = 0;
        int64_t tokens = 0;  // this step's tokens (all ranks' after aggregate())
        int64_t loss_tokens = -1; // targets with loss under the data's mask (all ranks'); -1: no mask
        double step_time = 0; // seconds (the slowest rank's after aggregate())
        double comm = 0;      // seconds waiting on other ranks (the slowest rank's after aggregate())
        Json ranks;           // per-rank figures (data parallel only)
        std::vector<RoutingRecord> routing; // every micro-batch's, on steps that log statistics
        std::vector<RouterStats> stats;     // from routing (over all ranks), by summarise()
    };
    Json run_steps(const TrainCallbacks &callbacks);
    // A RunControl swap request: applied, or its failure left as the outcome (never thrown).
    void apply_requested_swap(const Json &request);
    StepResult train_step(double lr, bool record_routing);
    // The step's routing statistics and, data parallel, every figure over all
    // ranks (every rank gets the same).
    void summarise(StepResult &r);
    // evaluate_split over this rank's share of the val split, token-weighted over all ranks.
    EvalResult evaluate_all_ranks();
    Json step_record(const StepResult &r, double lr);
    // Data parallel: each flag set on any rank (alone: the flags). Adds the wait to *comm.
    std::vector<bool> any_rank(std::vector<bool> flags, double *comm = nullptr);
    Json sample();
    // Both splits hold at least one sequence of seq_len + 1 tokens.
    void check_splits() const;

    std::shared_ptr<Model> model_;
    std::shared_ptr<DataSource> data_;
    TrainConfig config_;
    MetricsBus &bus_;
    std::string checkpoint_root_;
    Json run_config_;
    std::unique_ptr<torch::optim::AdamW> optimizer_;
    int64_t step_ = 0;
    double elapsed_ = 0;
    int64_t tokens_ = 0;
    double last_val_loss_ = -1;
    bool resumed_ = false;
    std::string last_checkpoint_;
    RunControl *control_ = nullptr;
    ProcessGroup *group_ = nullptr; // set for world size > 1
    std::unique_ptr<ModelSync> sync_;
    ExpertParallel *experts_ = nullptr; // the model's, when its experts are split over ranks
    std::unique_ptr<OptimizerShards> shards_; // train.shard_optimizer on several ranks
    std::unique_ptr<MasterWeights> masters_;  // train.weights_dtype = "bfloat16"
    bool synced_ = false; // the ranks' parameters agree (broadcast or checked)
    std::unique_ptr<ExpertRotation> rotation_; // train.expert_at_a_time
};

} // namespace cdrmix
