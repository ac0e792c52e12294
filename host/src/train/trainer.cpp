#include "train/trainer.hpp"

#include "metrics/record_fields.hpp"

#include "dist/gradient_sync.hpp"
#include "dist/model_sync.hpp"
#include "dist/process_group.hpp"
#include "model/sampler.hpp"
#include "train/autocast.hpp"
#include "train/checkpoint.hpp"
#include "train/checkpoint_extra_files.hpp"
#include "train/evaluate.hpp"
#include "train/expert_rotation.hpp"
#include "train/expert_state.hpp"
#include "train/fused_adamw.hpp"
#include "train/masked_loss.hpp"
#include "train/master_weights.hpp"
#include "train/optimizer_shards.hpp"

#include <cdrmix/data_mixture.hpp>
#include <cdrmix/loss_mask.hpp>
#include <cdrmix/error.hpp>
#include <cdrmix/registry.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <cmath>
#include <filesystem>
#include <sstream>
#include <thread>

#include <malloc.h>

namespace cdrmix {

const Schema &adamw_only_schema() {
    static const Schema s = [] {
        Schema k;
        k.number("weight_decay", 0.1, "AdamW decoupled weight decay, on matrices only (RWKV-LM)").min(0);
        k.number("beta1", 0.9, "AdamW first-moment decay").range(0, 1);
        k.number("beta2", 0.99, "AdamW second-moment decay").range(0, 1);
        k.number("eps", 1e-8, "AdamW denominator epsilon").min(0);
        return k;
    }();
    return s;
}

const Schema &adamw_schema() {
    static const Schema s = [] {
        Schema k("AdamW (decay on matrices only), as cdrmix.adamw{} and the stock trainer use it");
        k.include(lr_schema()).include(adamw_only_schema());
        return k;
    }();
    return s;
}

const Schema &TrainConfig::schema() {
    static const Schema s = [] {
        Schema k("The stock trainer: cdrmix.trainer{...} and the `train` table of the experiments");
        k.include(lr_schema()).include(schedule_only_schema()).include(adamw_only_schema());
        k.integer("batch_size", 16, "sequences per micro-batch").min(1);
        k.integer("grad_accum", 1, "micro-batches per optimiser step").min(1);
        k.integer("seq_len", 128, "tokens per training sequence").min(1);
        k.integer("seq_len_warmup_steps", 0,
                  "curriculum: steps over which the train length rises from seq_len_start to seq_len (0: off)")
            .min(0);
        k.integer("seq_len_start", 32, "curriculum: the train length at step 0, and the step the length rises by")
            .min(1);
        k.number("grad_clip", 1.0, "clip the global gradient norm to this (0: off; the norm is still logged)").min(0);
        k.string("autocast", "none", "bf16 autocast on the model's device; auto: bf16 where it pays (CUDA)")
            .one_of({"none", "bf16", "auto"});
        k.string("weights_dtype", "float32",
                 "dtype of the model's weights: bfloat16 keeps float32 masters in the optimiser (independent of "
                 "autocast)")
            .one_of({"float32", "bfloat16"});
        k.integer("eval_every", 100, "evaluate every N steps (0: only at the end)").min(0);
        k.integer("eval_batches", 8, "validation batches per evaluation (always the same ones)").min(1);
        k.integer("log_every", 10, "progress line and routing statistics every N steps").min(1);
        k.integer("checkpoint_every", 0, "checkpoint every N steps (0: only at the end and on stop)").min(0);
        k.integer("keep_checkpoints", 0, "keep the newest N step folders (0: all)").min(0);
        k.integer("sample_every", 0, "generate a text sample every N steps (0: never)").min(0);
        k.string("sample_prompt", "\n", "prompt of the samples");
        k.integer("sample_tokens", 100, "tokens per sample").min(1);
        k.number("sample_temperature", 0.8, "sampling temperature of the samples").min(0);
        k.string("checkpoint_activations", "none",
                 "recompute layers' activations in backward instead of keeping them: every layer (all), "
                 "layers 0, k, 2k, ... (every_k) or none")
            .one_of({"none", "all", "every_k"});
        k.integer("checkpoint_activations_every", 2, "every_k: the k of checkpoint_activations").min(1);
        k.boolean("shard_optimizer", false,
                  "ZeRO-1: split AdamW's moments over the data-parallel ranks (each updates its share)");
        k.boolean("expert_at_a_time", false,
                  "train one routed expert per MoE layer at a time (the others frozen, their AdamW moments on disk)");
        k.integer("expert_switch_every", 100,
                  "expert_at_a_time: the active expert of a layer with E experts at step s is (s / N) mod E")
            .min(1);
        k.integer("seed", 1337, "seed of initialisation-independent randomness (data order, dropout, sampling)").min(0);
        k.string("name", nullptr, "run name: runs/<name>-<stamp>/ (default: the script's file name)");
        k.string("resume", nullptr, "\"auto\" (newest checkpoint of an earlier run of this name) or a checkpoint path");
        return k;
    }();
    return s;
}

TrainConfig TrainConfig::from_config(const Config &given, c10::DeviceType device) {
    const Config c = schema().apply(given);
    TrainConfig t;
    t.schedule = LrSchedule::from_config(c);
    t.steps = t.schedule.total_steps;
    t.batch_size = c.get_int("batch_size");
    t.grad_accum = c.get_int("grad_accum");
    t.seq_len = c.get_int("seq_len");
    t.seq_len_start = c.get_int("seq_len_start");
    t.seq_len_warmup_steps = c.get_int("seq_len_warmup_steps");
    if (t.seq_len_warmup_steps > 0 && t.seq_len_start > t.seq_len)
        throw Error(c.where("seq_len_start") + ": seq_len_start (" + std::to_string(t.seq_len_start) +
                    ") must not exceed seq_len (" + std::to_string(t.seq_len) + ") for the length curriculum");
    t.weight_decay = c.get_double("weight_decay");
    t.beta1 = c.get_double("beta1");
    t.beta2 = c.get_double("beta2");
    t.eps = c.get_double("eps");
    t.grad_clip = c.get_double("grad_clip");
    t.autocast = AutocastGuard::resolve(c.get_string("autocast"), device); // records what ran, not "auto"
    t.weights_dtype = c.get_string("weights_dtype");
    t.eval_every = c.get_int("eval_every");
    t.eval_batches = c.get_int("eval_batches");
    t.log_every = c.get_int("log_every");
    t.checkpoint_every = c.get_int("checkpoint_every");
    t.keep_checkpoints = c.get_int("keep_checkpoints");
    t.sample_every = c.get_int("sample_every");
    t.sample_prompt = c.get_string("sample_prompt");
    t.sample_tokens = c.get_int("sample_tokens");
    t.sample_temperature = c.get_double("sample_temperature");
    t.seed = static_cast<uint64_t>(c.get_int("seed"));
    t.shard_optimizer = c.get_bool("shard_optimizer");
    t.expert_at_a_time = c.get_bool("expert_at_a_time");
    t.expert_switch_every = c.get_int("expert_switch_every");
    if (t.expert_at_a_time && t.shard_optimizer)
        throw Error(c.where("expert_at_a_time") + ": expert_at_a_time does not combine with shard_optimizer (ZeRO-1)");
    t.checkpoint_activations = ActivationCheckpointing::parse(
        c.get_string("checkpoint_activations"), c.get_int("checkpoint_activations_every"), c.where("checkpoint_activations"));
    // The run's identity (name, resume) belongs to the Run, not to what is saved as training settings.
    t.resolved = c.value();
    t.resolved.erase("name");
    t.resolved.erase("resume");
    t.resolved["min_lr"] = t.schedule.min_lr;
    t.resolved["warmup_steps"] = t.schedule.warmup_steps;
    t.resolved["autocast"] = t.autocast;
    return t;
}

int64_t TrainConfig::train_seq_len(int64_t step) const {
    if (seq_len_warmup_steps <= 0 || step >= seq_len_warmup_steps) return seq_len;
    // In double: (seq_len - start) * step can pass int64 for absurd configs; the result is below seq_len.
    const auto rising = seq_len_start + static_cast<int64_t>(double(seq_len - seq_len_start) * double(step) /
                                                             double(seq_len_warmup_steps));
    return std::max(seq_len_start, rising / seq_len_start * seq_len_start);
}

bool TrainConfig::logs_step(int64_t step) const {
    return step == 0 || (step + 1) % std::max<int64_t>(1, log_every) == 0 || step + 1 == steps;
}

std::unique_ptr<torch::optim::AdamW> make_adamw(const std::vector<std::pair<std::string, torch::Tensor>> &named,
                                                double lr, double weight_decay, double beta1, double beta2, double eps) {
    std::vector<torch::Tensor> decay, no_decay;
    for (const auto &[name, p] : named) {
        if (!p.requires_grad()) continue;
        // RWKV-LM: decay only matrices; decaying vectors (norms, decay rates, mixes) hurts.
        const bool matrix = p.dim() >= 2 && name.size() >= 6 && name.compare(name.size() - 6, 6, "weight") == 0;
        (matrix ? decay : no_decay).push_back(p);
    }
    auto base = torch::optim::AdamWOptions(lr).betas({beta1, beta2}).eps(eps);
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(
                                   torch::optim::AdamWOptions(base).weight_decay(weight_decay)));
    groups.emplace_back(no_decay,
                        std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(base).weight_decay(0.0)));
    return std::make_unique<FusedAdamW>(std::move(groups), base);
}

std::unique_ptr<torch::optim::AdamW> make_adamw(Model &model, double lr, double weight_decay, double beta1,
                                                double beta2, double eps) {
    std::vector<std::pair<std::string, torch::Tensor>> named;
    for (const auto &p : model.named_parameters()) named.emplace_back(p.key(), p.value());
    return make_adamw(named, lr, weight_decay, beta1, beta2, eps);
}

double clip_gradients(Model &model, double max_norm) { return clip_grad_norm(model.parameters(), max_norm); }

namespace {

void set_lr(torch::optim::AdamW &opt, double lr) {
    for (auto &g : opt.param_groups()) static_cast<torch::optim::AdamWOptions &>(g.options()).lr(lr);
}

} // namespace

Json router_stats_json(const std::vector<RouterStats> &stats) {
    namespace f = fields::moe;
    Json arr = Json::array();
    for (const auto &s : stats) {
        Json losses = Json::object();
        for (const auto &l : s.losses) losses[l.first] = l.second;
        arr.push_back({{f::layer, s.layer},
                       {f::tokens_per_expert, s.tokens_per_expert},
                       {f::token_entropy, s.token_entropy},
                       {f::load_entropy, s.load_entropy},
                       {f::dropped_tokens, s.dropped_tokens},
                       {f::dead_experts, s.dead_experts},
                       {f::load_cv, s.load_cv},
                       {f::losses, losses}});
    }
    return arr;
}

namespace {

// Every step allocates and frees the same activation tensors. glibc's default
// returns freed memory at the top of the heap to the system and hands tensors
// above a moving threshold to mmap, so each step pays page faults for memory
// it had a moment ago (measured: ~15% of a small model's step in the kernel).
// Keeping freed memory for reuse (up to the run's peak) removes them; tensors
// above 32 MiB (glibc's largest mmap threshold) still come from mmap.
void keep_freed_memory_for_reuse() {
#ifdef __GLIBC__
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

// This rank's saved read position. A checkpoint holds every rank's
// (data_positions, by rank; data_position is rank 0's, for single-process
// readers). At another world size rank r continues from the position old
// rank r mod old_world_size had, read in the new sharding (docs/distributed.md).
Json saved_data_position(const Json &state, int rank, const std::string &where) {
    if (!state.contains("data_positions")) return state["data_position"];
    const Json &all = state["data_positions"];
    if (!all.is_array() || all.empty()) throw Error(where + ": 'data_positions' is not a non-empty list");
    return all[size_t(rank) % all.size()];
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string number(double v) {
    std::ostringstream os;
    os << v;
    return os.str();
}

} // namespace

Trainer::Trainer(std::shared_ptr<Model> model, std::shared_ptr<DataSource> data, TrainConfig config, MetricsBus &bus,
                 std::string checkpoint_root)
    : model_(std::move(model)), data_(std::move(data)), config_(std::move(config)), bus_(bus),
      checkpoint_root_(std::move(checkpoint_root)) {
    if (data_->tokenizer()->vocab_size() > model_->spec().vocab_size)
        throw Error("trainer: the data's vocabulary (" + std::to_string(data_->tokenizer()->vocab_size()) +
                    " tokens) is larger than the model's vocab_size (" + std::to_string(model_->spec().vocab_size) + ")");
    if (config_.sample_every > 0) {
        try {
            if (data_->tokenizer()->encode(config_.sample_prompt).empty()) throw Error("it is empty");
        } catch (const std::exception &e) {
            throw Error("trainer: key 'sample_prompt' cannot be encoded by the data's tokenizer: " +
                        std::string(e.what()));
        }
    }
    check_splits();
    config_.autocast = AutocastGuard::resolve(config_.autocast, model_->device().type());
    model_->set_activation_checkpointing(config_.checkpoint_activations);
    if (config_.weights_dtype == "bfloat16") {
        if (model_->expert_group())
            throw Error("train.weights_dtype = \"bfloat16\" is not supported with the experts split over ranks "
                        "(model.expert_parallel > 1): use \"float32\"");
        // The rotation freezes the model's parameters; the optimiser would step their masters.
        if (config_.expert_at_a_time)
            throw Error("train.expert_at_a_time is not supported with train.weights_dtype = \"bfloat16\": use "
                        "\"float32\"");
        masters_ = std::make_unique<MasterWeights>(*model_);
    }
    config_.resolved["weights_dtype"] = config_.weights_dtype; // what checkpoints record, however config_ was built
    optimizer_ = masters_ ? make_adamw(masters_->named(), config_.schedule.lr, config_.weight_decay, config_.beta1,
                                       config_.beta2, config_.eps)
                          : make_adamw(*model_, config_.schedule.lr, config_.weight_decay, config_.beta1, config_.beta2,
                                       config_.eps);
    if (config_.expert_at_a_time) {
        if (model_->expert_group())
            throw Error("train.expert_at_a_time: not with the experts split over ranks (expert_parallel)");
        // After make_adamw, which leaves out parameters that do not require gradients: the
        // optimiser holds every parameter, so optimizer.pt pairs states with them as always.
        rotation_ = std::make_unique<ExpertRotation>(*model_, config_.expert_switch_every);
    }
    keep_freed_memory_for_reuse();
}

Trainer::~Trainer() = default;

void Trainer::set_process_group(ProcessGroup *group) {
    if (!group || group->world_size() == 1) return;
    if (group_) throw Error("trainer: set_process_group was already called");
    // The gradient all-reduce and ZeRO's shards work on the model's parameters, not on float32 masters.
    if (masters_)
        throw Error("train.weights_dtype = \"bfloat16\" is not supported with data parallelism (world size " +
                    std::to_string(group->world_size()) + "): use \"float32\"");
    if (rotation_) throw Error("train.expert_at_a_time: only in a single-process run (not with data parallelism)");
    group_ = group;
    experts_ = dynamic_cast<ExpertParallel *>(model_->expert_group());
    sync_ = std::make_unique<ModelSync>(*group_, *model_, experts_);
    if (config_.shard_optimizer) {
        // Dense state over every rank; split experts' over the ranks holding the same ones.
        std::vector<OptimizerShards::Part> parts{{group_, sync_->dense_trainable()}};
        if (experts_) parts.push_back({&experts_->replicas(), sync_->held_trainable()});
        shards_ = std::make_unique<OptimizerShards>(std::move(parts));
        shards_->release(*optimizer_);
    }
}

int64_t Trainer::optimizer_state_bytes() const {
    int64_t bytes = 0;
    for (const auto &group : optimizer_->param_groups()) // the model's parameters, or their float32 masters
        for (const auto &p : group.params())
            if (auto *s = param_state(*optimizer_, p)) {
                auto &a = static_cast<torch::optim::AdamWParamState &>(*s);
                bytes += (a.exp_avg().numel() + a.exp_avg_sq().numel()) * int64_t(a.exp_avg().element_size());
            }
    return bytes;
}

std::vector<bool> Trainer::any_rank(std::vector<bool> flags, double *comm) {
    if (!group_) return flags;
    const auto t0 = std::chrono::steady_clock::now();
    torch::Tensor t = torch::zeros({int64_t(flags.size())}, torch::kFloat32);
    for (size_t i = 0; i < flags.size(); ++i) t[int64_t(i)] = flags[i] ? 1.0f : 0.0f;
    group_->all_reduce(t, ReduceOp::Max);
    for (size_t i = 0; i < flags.size(); ++i) flags[i] = t[int64_t(i)].item<float>() > 0;
    if (comm) *comm += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return flags;
}

void Trainer::check_splits() const {
    // Found here rather than at the first eval, after training ran and with no checkpoint.
    const int64_t need = config_.seq_len + 1;
    const int64_t train = data_->num_tokens(Split::Train), val = data_->num_tokens(Split::Val);
    // -1: a streaming or generated source that cannot tell before it is read.
    if (train >= 0 && train < need)
        throw Error("trainer: the train split holds " + std::to_string(train) + " tokens, fewer than one sequence (" +
                    "seq_len + 1 = " + std::to_string(need) + "): lower train.seq_len or give more data");
    if (val >= 0 && val < need)
        throw Error("trainer: the val split holds " + std::to_string(val) + " tokens, fewer than one sequence (" +
                    "seq_len + 1 = " + std::to_string(need) + "): raise data.val_fraction, give more data, or lower "
                    "train.seq_len");
}

namespace {

// After load_model_weights: the float32 values the checkpoint holds. With bf16
// weights the masters come back exactly (from its masters, or from a float32
// checkpoint's weights); a float32 run resuming bf16 weights takes their masters.
void restore_float32_weights(MasterWeights *masters, Model &model, const std::string &checkpoint_dir) {
    if (masters) return masters->load(checkpoint_dir);
    if (!has_master_weights(checkpoint_dir)) return;
    NamedTensors trainable;
    for (const auto &p : model.named_parameters())
        if (p.value().requires_grad()) trainable.emplace_back(p.key(), p.value());
    load_float32_weights(trainable, checkpoint_dir);
}

} // namespace

void Trainer::resume(const std::string &checkpoint_dir) {
    verify_checkpoint(checkpoint_dir);
    const std::string where = checkpoint_dir + "/trainer_state.json";
    // An imported model has weights but no optimiser, data position or step: training starts from its weights.
    if (!std::filesystem::exists(where) && std::filesystem::exists(checkpoint_dir + "/" + kImportRecord)) {
        load_model_weights(*model_, checkpoint_dir);
        restore_float32_weights(masters_.get(), *model_, checkpoint_dir);
        bus_.publish({{"event", "resume"}, {"step", step_}, {"path", checkpoint_dir}, {"weights_only", true}});
        return;
    }
    Json state = read_checkpoint_json(checkpoint_dir, "trainer_state.json");
    for (const char *key : {"step", "data_position", "rng_state"})
        if (!state.contains(key)) throw Error(where + ": no '" + key + "' (not a resumable checkpoint)");
    load_model_weights(*model_, checkpoint_dir);
    restore_float32_weights(masters_.get(), *model_, checkpoint_dir);
    if (experts_)
        load_whole_optimizer_state(*experts_, *model_, *optimizer_, checkpoint_dir);
    else
        load_optimizer_state(*optimizer_, checkpoint_dir);
    if (shards_) shards_->release(*optimizer_);
    const int64_t step = state["step"].get<int64_t>();
    if (rotation_)
        rotation_->restore(checkpoint_dir, step, *optimizer_, checkpoint_root_);
    else if (!experts_)
        load_all_expert_moments(*model_, *optimizer_, checkpoint_dir); // written by expert-at-a-time training
    data_->restore(saved_data_position(state, group_ ? group_->rank() : 0, where));
    set_cpu_rng_state(state["rng_state"].get<std::string>(), where);
    step_ = step;
    tokens_ = state.value("tokens", int64_t(0));
    elapsed_ = state.value("elapsed_s", 0.0);
    last_val_loss_ = state.value("val_loss", -1.0);
    resumed_ = true;
    if (group_) {
        sync_->check_equal("resuming from " + checkpoint_dir);
        synced_ = true;
    }
    bus_.publish({{"event", "resume"}, {"step", step_}, {"path", checkpoint_dir}});
}

void Trainer::summarise(StepResult &r) {
    if (!r.routing.empty()) {
        std::function<void(torch::Tensor &)> over_ranks;
        if (group_) over_ranks = [this](torch::Tensor &sums) { group_->all_reduce(sums, ReduceOp::Sum); };
        r.stats = compute_router_stats(r.routing, over_ranks);
        r.routing.clear();
    }
    if (!group_) return;
    namespace f = fields::rank;
    const int64_t world = group_->world_size(), me = group_->rank();
    // [loss, aux, tokens, loss tokens, then per rank: tokens, step time, comm], summed: each rank fills its own row.
    torch::Tensor v = torch::zeros({4 + 3 * world}, torch::kFloat64);
    double *p = v.data_ptr<double>();
    p[0] = r.loss;
    p[1] = r.aux;
    p[2] = double(r.tokens);
    p[3] = double(r.loss_tokens);
    p[4 + 3 * me] = double(r.tokens);
    p[5 + 3 * me] = r.step_time;
    p[6 + 3 * me] = r.comm;
    group_->all_reduce(v, ReduceOp::Sum);
    // (comm_s counts each rank's waits up to here; this all-reduce's own is not in the record.)
    r.loss = p[0] / double(world);
    r.aux = p[1] / double(world);
    r.tokens = int64_t(p[2]);
    if (r.loss_tokens >= 0) r.loss_tokens = int64_t(p[3]); // every rank reads the same kind of source
    r.ranks = Json::array();
    r.step_time = 0;
    double comm = 0;
    for (int64_t k = 0; k < world; ++k) {
        const double tokens = p[4 + 3 * k], time = p[5 + 3 * k], wait = p[6 + 3 * k];
        r.ranks.push_back({{f::tokens_per_s, time > 0 ? tokens / time : 0.0}, {f::step_time_s, time}, {f::comm_s, wait}});
        r.step_time = std::max(r.step_time, time);
        comm = std::max(comm, wait);
    }
    r.comm = comm;
}

namespace {

// Every rank reads the same draws, so the shares are the same on every rank.
Json data_shares(const DataMixture &mix) {
    const auto members = mix.members();
    int64_t rows = 0;
    for (const auto &m : members) rows += m.train_rows;
    Json shares = Json::object();
    for (const auto &m : members) shares[m.name] = rows > 0 ? double(m.train_rows) / double(rows) : 0.0;
    return shares;
}

// Token-weighted over every rank's share of the val split.
EvalResult reduce_eval(EvalResult ev, ProcessGroup *group) {
    if (!group) return ev;
    torch::Tensor v = torch::tensor({ev.loss * double(ev.tokens), double(ev.tokens), double(ev.batches)},
                                    torch::kFloat64);
    group->all_reduce(v, ReduceOp::Sum);
    const double *p = v.data_ptr<double>();
    ev.tokens = int64_t(p[1]);
    ev.batches = int64_t(p[2]);
    ev.loss = p[1] > 0 ? p[0] / p[1] : 0.0;
    ev.perplexity = std::exp(ev.loss);
    return ev;
}

// A mix source's members, each on its own val split: {name: loss}; null for another source.
Json member_val_losses(Model &model, DataSource &data, const TrainConfig &c, ProcessGroup *group) {
    auto *mix = dynamic_cast<DataMixture *>(&data);
    if (!mix) return Json();
    Json losses = Json::object();
    const auto members = mix->members();
    for (size_t i = 0; i < members.size(); ++i)
        losses[members[i].name] =
            reduce_eval(evaluate_split(model, mix->member(i), Split::Val, c.batch_size, c.seq_len, c.eval_batches), group)
                .loss;
    return losses;
}

} // namespace

Json Trainer::step_record(const StepResult &r, double lr) {
    namespace f = fields::step;
    const double avg = elapsed_ / double(std::max<int64_t>(1, step_));
    Json rec = {{fields::event, fields::events::step},
                {f::step, step_},
                {f::total_steps, config_.steps},
                {f::loss, r.loss},
                {f::aux_loss, r.aux},
                {f::lr, lr},
                {f::grad_norm, r.grad_norm},
                {f::step_time_s, r.step_time},
                {f::tokens, tokens_},
                {f::tokens_per_s, elapsed_ > 0 ? double(tokens_) / elapsed_ : 0.0},
                {f::elapsed_s, elapsed_},
                {f::eta_s, avg * double(config_.steps - step_)}};
    if (group_) {
        rec[f::world_size] = group_->world_size();
        rec[f::comm_s] = r.comm;
        rec[f::ranks] = r.ranks;
    }
    if (!r.stats.empty()) rec[f::moe] = router_stats_json(r.stats);
    if (config_.seq_len_warmup_steps > 0) rec[f::seq_len] = config_.train_seq_len(step_ - 1);
    if (const auto *mix = dynamic_cast<const DataMixture *>(data_.get())) rec[f::data_share] = data_shares(*mix);
    if (r.loss_tokens >= 0) rec[f::loss_tokens] = r.loss_tokens;
    return rec;
}

EvalResult Trainer::evaluate_all_ranks() {
    return reduce_eval(evaluate_split(*model_, *data_, Split::Val, config_.batch_size, config_.seq_len,
                                      config_.eval_batches),
                       group_);
}

double Trainer::evaluate() { return evaluate_all_ranks().loss; }

std::string Trainer::checkpoint() {
    Json state = {{"step", step_},
                  {"tokens", tokens_},
                  {"elapsed_s", elapsed_},
                  {"val_loss", last_val_loss_},
                  {"lr_next", config_.schedule.at(step_)},
                  {"data_position", data_->position()},
                  {"rng_state", cpu_rng_state()},
                  {"train", config_.to_json()}};
    if (group_) {
        state["world_size"] = group_->world_size();
        state["data_positions"] = Json::array();
        for (const std::string &p : group_->all_gather(data_->position().dump()))
            state["data_positions"].push_back(Json::parse(p));
    }
    // The checkpoint holds the whole state: shards to each group's first rank, split experts to rank 0.
    if (shards_) shards_->consolidate(*optimizer_);
    WholeModel whole;
    if (experts_) whole = gather_whole_model(*experts_, *model_, *optimizer_);
    if (rotation_) { // single-process: the frozen experts' moment files go into the folder beside optimizer.pt
        last_checkpoint_ = save_checkpoint_with(checkpoint_root_, step_, *model_, *optimizer_, *data_->tokenizer(), state,
                                                run_config_,
                                                [this](const std::string &dir) { rotation_->write_spilled(dir); });
        prune_checkpoints(checkpoint_root_, config_.keep_checkpoints);
    } else if (!group_ || group_->rank() == 0) {
        last_checkpoint_ = experts_ ? save_checkpoint(checkpoint_root_, step_, whole.weights, model_->spec().source_json,
                                                      *whole.optimizer, *data_->tokenizer(), state, run_config_)
                                    : save_checkpoint(checkpoint_root_, step_, *model_, *optimizer_,
                                                      *data_->tokenizer(), state, run_config_,
                                                      masters_ ? masters_->named() : NamedTensors{});
        prune_checkpoints(checkpoint_root_, config_.keep_checkpoints);
    }
    if (shards_) shards_->release(*optimizer_);
    // Every rank knows where the run stands (for its messages and callbacks).
    if (group_) last_checkpoint_ = group_->share(last_checkpoint_);
    bus_.publish({{"event", "checkpoint"}, {"step", step_}, {"path", last_checkpoint_}});
    return last_checkpoint_;
}

Json Trainer::sample() {
    SampleOptions o;
    o.max_tokens = config_.sample_tokens;
    o.temperature = config_.sample_temperature;
    o.seed = config_.seed + static_cast<uint64_t>(step_); // its own generator: training's RNG stream is untouched
    const std::string text = generate(*model_, *data_->tokenizer(), config_.sample_prompt, o);
    Json rec = {{"event", "sample"}, {"step", step_}, {"prompt", config_.sample_prompt}, {"text", text}};
    bus_.publish(rec);
    return rec;
}

Trainer::StepResult Trainer::train_step(double lr, bool record_routing) {
    if (rotation_) rotation_->advance(step_, *optimizer_, checkpoint_root_);
    set_lr(*optimizer_, lr);
    // Undefined rather than zeroed: the first backward then hands its gradients
    // over instead of adding them into zeros (one sweep and one op per parameter fewer).
    model_->zero_grad(/*set_to_none=*/true);
    StepResult r;
    const int64_t n = config_.grad_accum;
    std::string diverged; // this rank's first non-finite loss
    // The step's batches are read first: under a loss mask (cdrmix/loss_mask.hpp)
    // micro-batches keep different numbers of targets, and each one's share of
    // the step's kept targets must be known before its backward.
    std::vector<torch::Tensor> batches, masks;
    int64_t kept = 0;
    for (int64_t micro = 0; micro < n; ++micro) {
        batches.push_back(data_->next_batch(Split::Train, config_.batch_size, config_.train_seq_len(step_)));
        masks.push_back(last_loss_mask(*data_));
        kept += loss_token_count(batches.back(), masks.back());
    }
    const bool masked = masks.front().defined();
    if (masked) r.loss_tokens = kept;
    for (int64_t micro = 0; micro < n; ++micro) {
        const bool last = micro + 1 == n;
        const torch::Tensor &batch = batches[static_cast<size_t>(micro)];
        const torch::Tensor &mask = masks[static_cast<size_t>(micro)];
        LossOutput out;
        {
            AutocastGuard autocast(config_.autocast, "trainer", model_->device().type());
            out = masked_loss(*model_, batch, mask, record_routing);
        }
        const double ce = out.ce.item<double>(), total = out.total.item<double>();
        if ((!std::isfinite(ce) || !std::isfinite(total)) && diverged.empty())
            diverged = "loss is " + number(std::isfinite(ce) ? total : ce) +
                       (n > 1 ? " in micro-batch " + std::to_string(micro + 1) : "");
        // Data parallel: the ranks agree before the backward that reduces, so all stop together.
        const bool stop = group_ ? last && any_rank({!diverged.empty()}, &r.comm)[0] : !diverged.empty();
        if (stop) {
            const std::string what =
                diverged.empty() ? "another rank's loss is not finite" : diverged + (group_ ? " on rank " +
                                                                                     std::to_string(group_->rank()) : "");
            throw Error("training diverged at step " + std::to_string(step_ + 1) + ": " + what +
                        "; stopped before the optimiser step, " +
                        (last_checkpoint_.empty() ? std::string("no checkpoint was written")
                                                  : "the last checkpoint is " + last_checkpoint_) +
                        " (lower train.lr or raise warmup_steps)");
        }
        if (sync_) sync_->set_enabled(last); // reduce once per optimiser step
        // Without a mask each micro-batch holds the same number of targets, so
        // averaging the per-micro-batch means gives the mean over the whole
        // step's targets. With one, each mean is weighted by its micro-batch's
        // share of the step's kept targets (the auxiliary losses still by 1/n).
        const double share = masked ? double(loss_token_count(batch, mask)) / double(std::max<int64_t>(1, kept))
                                    : 1.0 / double(n);
        double aux = 0;
        for (const auto &l : out.aux) aux += l.value.item<double>() / double(n);
        if (diverged.empty()) {
            if (!masked) (n == 1 ? out.total : out.total / double(n)).backward();
            else (out.ce * share + (out.total - out.ce) / double(n)).backward();
        }
        if (masters_) masters_->widen_gradients(); // accumulated over micro-batches in float32
        r.loss += ce * share;
        r.aux += aux;
        for (auto &rec : out.routing) r.routing.push_back(std::move(rec)); // pooled over the micro-batches
        r.tokens += batch.size(0) * (batch.size(1) - 1);
    }
    if (sync_) r.comm += sync_->last_wait_s();
    if (experts_) r.comm += experts_->take_exchange_seconds(); // the experts' all-to-alls, both passes
    r.grad_norm = sync_      ? sync_->clip_grad_norm(config_.grad_clip)
                  : masters_ ? clip_grad_norm(masters_->tensors(), config_.grad_clip)
                             : clip_gradients(*model_, config_.grad_clip);
    if (!std::isfinite(r.grad_norm))
        throw Error("training diverged at step " + std::to_string(step_ + 1) + ": the gradient norm is " +
                    number(r.grad_norm) + "; stopped before the optimiser step" +
                    (last_checkpoint_.empty() ? std::string() : ", the last checkpoint is " + last_checkpoint_));
    if (shards_)
        shards_->step(*optimizer_);
    else
        optimizer_->step();
    if (masters_) masters_->round_into_weights();
    return r;
}

Json Trainer::run(const TrainCallbacks &cb) {
    try {
        return run_steps(cb);
    } catch (const CollectiveError &e) {
        // Another rank is gone: say where the run can continue from.
        throw CollectiveError(std::string(e.what()) + " at step " + std::to_string(step_ + 1) + "; " +
                              (last_checkpoint_.empty() ? "no checkpoint was written"
                                                        : "the last checkpoint is " + last_checkpoint_ +
                                                              " (continue with --resume auto)"));
    } catch (const MetricsWriteError &e) {
        // Stop before more records are lost, and save what the steps since the
        // last checkpoint learnt if the disk still takes it (alone: a checkpoint
        // of several ranks needs them all, and they stop when this one does).
        std::string saved = last_checkpoint_.empty() ? "no checkpoint was written" : "the last checkpoint is " + last_checkpoint_;
        if (!group_ && step_ > 0) {
            const std::string before = last_checkpoint_;
            try {
                checkpoint();
            } catch (const MetricsWriteError &) {
                // The checkpoint was saved; only its record could not be written.
            } catch (const std::exception &failed) {
                saved += " (a checkpoint at step " + std::to_string(step_) + " failed too: " + failed.what() + ")";
            }
            if (last_checkpoint_ != before) saved = "saved a checkpoint at step " + std::to_string(step_) + ": " + last_checkpoint_;
        }
        throw Error(std::string(e.what()) + "; stopped at step " + std::to_string(step_) + ", " + saved +
                    " (continue with --resume auto)");
    }
}

Json Trainer::swap_router(int64_t layer, const Json &router, const Registry &registry) {
    if (group_ || experts_ || shards_) throw Error("swap_router: only in a single-process run, for now");
    // make_adamw would leave the frozen experts out, and optimizer.pt would no longer pair states by position.
    if (rotation_) throw Error("swap_router: not with train.expert_at_a_time");
    // AdamW's state is keyed by each parameter's tensor; the swap makes new ones, so carry it over by name.
    auto key = [](const torch::Tensor &p) { return c10::guts::to_string(p.unsafeGetTensorImpl()); };
    // What the optimiser steps: the model's parameters, or their float32 masters.
    auto optimised = [&] {
        if (masters_) return masters_->named();
        NamedTensors named;
        for (const auto &p : model_->named_parameters()) named.emplace_back(p.key(), p.value());
        return named;
    };
    std::map<std::string, std::unique_ptr<torch::optim::OptimizerParamState>> by_name;
    auto &state = optimizer_->state();
    for (const auto &[name, p] : optimised())
        if (auto it = state.find(key(p)); it != state.end()) by_name[name] = it->second->clone();
    const auto layers = model_->swap_router(layer, router, registry, config_.seed + static_cast<uint64_t>(step_));
    std::vector<std::string> routers; // what Model::swap_router replaced
    for (const int64_t i : layers) routers.push_back("blocks." + std::to_string(i) + ".ffn.router.");
    if (masters_) masters_->rebind(*model_, routers);
    // A new router's moments start at zero, even where its parameters reuse the old router's names.
    auto replaced = [&](const std::string &name) {
        return std::any_of(routers.begin(), routers.end(), [&](const std::string &r) { return name.rfind(r, 0) == 0; });
    };
    const double lr = static_cast<torch::optim::AdamWOptions &>(optimizer_->param_groups().front().options()).lr();
    optimizer_ = make_adamw(optimised(), lr, config_.weight_decay, config_.beta1, config_.beta2, config_.eps);
    for (const auto &[name, p] : optimised())
        if (auto it = by_name.find(name); it != by_name.end() && !replaced(name))
            optimizer_->state()[key(p)] = std::move(it->second);
    Json rec = {{fields::event, fields::events::swap},
                {fields::step::step, step_},
                {fields::swap::layers, layers},
                {fields::swap::router, router}};
    bus_.publish(rec);
    return rec;
}

Json Trainer::swap_router(const Json &request, const Registry &registry) {
    if (!request.is_object()) throw Error("swap: a request is {\"layer\": ..., \"router\": {...}}, not " + request.dump());
    const Json layer = request.value("layer", Json("all"));
    if (!(layer == "all" || (layer.is_number_integer() && layer.get<int64_t>() >= 0)))
        throw Error("swap: layer is a layer id (0-based, as in the records) or \"all\", not " + layer.dump());
    const Json router = request.value("router", Json());
    if (!router.is_object() || !router.contains("type"))
        throw Error("swap: router is a router config such as {\"type\": \"sinkhorn\"}, not " + router.dump());
    return swap_router(layer == "all" ? -1 : layer.get<int64_t>(), router, registry);
}

void Trainer::apply_requested_swap(const Json &request) {
    try {
        const Json rec = swap_router(request, Registry::global());
        control_->set_swap_outcome("swapped layers " + rec[fields::swap::layers].dump() + " to " +
                                   rec[fields::swap::router].dump() + " before step " + std::to_string(step_ + 1));
    } catch (const std::exception &e) {
        // The request came from a window, not the script: the run goes on with its router.
        control_->set_swap_outcome(std::string("swap failed: ") + e.what());
    }
}

Json Trainer::run_steps(const TrainCallbacks &cb) {
    if (!resumed_) torch::manual_seed(config_.seed); // a resumed run continues the saved RNG stream instead
    if (model_->expert_group() && !group_)
        throw Error("trainer: the model's experts are split over ranks (expert_parallel), but the trainer has no "
                    "process group");
    if (group_ && !synced_) {
        sync_->broadcast();
        synced_ = true;
    }
    model_->train();
    double last_loss = 0;
    bool stop = false;
    auto due = [&](int64_t every) { return every > 0 && step_ % every == 0; };
    // Data parallel: one rank's pause (its dashboard) or stop holds every rank.
    auto control = [&] {
        return any_rank({control_ && control_->pause && !control_->stop, stop || (control_ && control_->stop)});
    };
    while (step_ < config_.steps) {
        std::vector<bool> held = control();
        for (; held[0]; held = control()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
        if (held[1]) break;
        if (control_)
            if (std::optional<Json> swap = control_->take_swap()) apply_requested_swap(*swap);
        const auto t0 = std::chrono::steady_clock::now();
        const double lr = config_.schedule.at(step_);
        StepResult r = train_step(lr, config_.logs_step(step_));
        ++step_;
        r.step_time = seconds_since(t0);
        summarise(r);
        elapsed_ += r.step_time;
        tokens_ += r.tokens;
        last_loss = r.loss;

        Json rec = step_record(r, lr);
        bus_.publish(rec);
        if (cb.on_step && !cb.on_step(rec)) stop = true;

        if (control_ && control_->stop) stop = true;
        // The ranks must take the same branches below (evaluation and checkpoints are collective).
        const std::vector<bool> agreed = any_rank({stop, control_ && control_->checkpoint_now.exchange(false)});
        stop = agreed[0];
        const bool requested = agreed[1];
        const bool last = step_ == config_.steps || stop;
        if (due(config_.eval_every) || last) {
            const EvalResult ev = evaluate_all_ranks();
            last_val_loss_ = ev.loss;
            Json er = {{fields::event, fields::events::eval},
                       {fields::step::step, step_},
                       {fields::eval::val_loss, ev.loss},
                       {fields::eval::val_ppl, ev.perplexity},
                       {fields::eval::val_tokens, ev.tokens}};
            const Json by_source = member_val_losses(*model_, *data_, config_, group_);
            if (!by_source.is_null()) er[fields::eval::val_loss_by_source] = by_source;
            bus_.publish(er);
            if (cb.on_eval && !cb.on_eval(er)) stop = true;
        }
        if (due(config_.sample_every)) {
            Json sr = sample();
            if (cb.on_sample && !cb.on_sample(sr)) stop = true;
        }
        if (due(config_.eval_every) || last || due(config_.sample_every)) stop = any_rank({stop})[0];
        if (!checkpoint_root_.empty() && (due(config_.checkpoint_every) || last || stop || requested)) {
            std::string path = checkpoint();
            if (cb.on_checkpoint && !cb.on_checkpoint({{"event", "checkpoint"}, {"step", step_}, {"path", path}}))
                stop = true;
        }
    }
    namespace fe = fields::end;
    Json end = {{fields::event, fields::events::end},
                {fields::step::step, step_},
                {fe::train_loss, last_loss},
                {fe::val_loss, last_val_loss_},
                {fe::tokens, tokens_},
                {fe::elapsed_s, elapsed_},
                {fe::tokens_per_s, elapsed_ > 0 ? double(tokens_) / elapsed_ : 0.0},
                {fe::stopped, step_ < config_.steps},
                {fe::checkpoint, last_checkpoint_}};
    bus_.publish(end);
    return end;
}

} // namespace cdrmix
