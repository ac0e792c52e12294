// The field names of the records a run publishes (metrics.jsonl, headless JSON
// lines, the Lua callbacks' tables), declared once: the trainer writes them,
// the dashboard (ui/, which links no LibTorch) reads them through this header.
// Plain constants, no dependencies.
#pragma once

namespace cdrmix::fields {

inline constexpr const char *event = "event";
inline constexpr const char *time = "time"; // unix seconds, added by the metrics bus to every record

namespace events {
inline constexpr const char *run = "run"; // a run folder was made: run_record below
inline constexpr const char *step = "step";
inline constexpr const char *eval = "eval";
inline constexpr const char *sample = "sample";
inline constexpr const char *checkpoint = "checkpoint";
inline constexpr const char *end = "end";
inline constexpr const char *swap = "swap"; // a router replaced mid-run (Trainer::swap_router)
} // namespace events

// {"event": "swap"} records (also carry step::step: the swap takes effect from the next step).
namespace swap {
inline constexpr const char *layers = "layers"; // the MoE layers whose router was replaced
inline constexpr const char *router = "router"; // the new router's config
} // namespace swap

// {"event": "step"} records.
namespace step {
inline constexpr const char *step = "step";
inline constexpr const char *total_steps = "total_steps";
inline constexpr const char *loss = "loss";
inline constexpr const char *aux_loss = "aux_loss";
inline constexpr const char *lr = "lr";
inline constexpr const char *grad_norm = "grad_norm";
inline constexpr const char *step_time_s = "step_time_s";
inline constexpr const char *tokens = "tokens";
inline constexpr const char *tokens_per_s = "tokens_per_s";
inline constexpr const char *elapsed_s = "elapsed_s";
inline constexpr const char *eta_s = "eta_s";
// Added by the metrics bus: the process's resident memory and, for models on a GPU, that device's memory.
inline constexpr const char *rss_mb = "rss_mb";
inline constexpr const char *device_mem_mb = "device_mem_mb";
inline constexpr const char *device_mem_total_mb = "device_mem_total_mb";
// Multi-process runs (data parallel): every rank publishes the same record,
// aggregated over ranks (loss and aux_loss averaged, tokens and tokens_per_s
// summed, step_time_s the slowest rank's, routing statistics over all ranks'
// tokens), plus the world size, comm_s (the seconds the slowest rank spent
// waiting on communication this step) and `ranks`, one table per rank with
// the fields of namespace rank below.
inline constexpr const char *world_size = "world_size";
inline constexpr const char *comm_s = "comm_s";
inline constexpr const char *ranks = "ranks";
// Routing statistics, on the steps that log them (train.log_every): a list of
// per-layer tables with the fields below.
inline constexpr const char *moe = "moe";
// With a length curriculum (train.seq_len_warmup_steps): this step's train sequence length.
inline constexpr const char *seq_len = "seq_len";
// A mix data source (cdrmix/data_mixture.hpp): {source name: share of the train
// rows it has supplied since the run started}, the shares summing to 1.
inline constexpr const char *data_share = "data_share";
// A data source with a loss mask (cdrmix/loss_mask.hpp, e.g. `chat`): the
// step's targets that had loss (all ranks'), of the `tokens` read.
inline constexpr const char *loss_tokens = "loss_tokens";
} // namespace step

// One rank's entry in step.ranks.
namespace rank {
inline constexpr const char *tokens_per_s = "tokens_per_s"; // this rank's tokens over this step's time
inline constexpr const char *step_time_s = "step_time_s";
inline constexpr const char *comm_s = "comm_s"; // waiting on communication this step
} // namespace rank

// {"event": "eval"} records (also carry step::step).
namespace eval {
inline constexpr const char *val_loss = "val_loss";
inline constexpr const char *val_ppl = "val_ppl";
inline constexpr const char *val_tokens = "val_tokens";
// A mix data source: {source name: loss on that source's own val split}.
inline constexpr const char *val_loss_by_source = "val_loss_by_source";
} // namespace eval

// {"event": "run"} records: the first record of a run folder's metrics.
namespace run_record {
inline constexpr const char *dir = "dir";
inline constexpr const char *name = "name"; // the run's name (a trainer's `name`, else the script's file name)
} // namespace run_record

// {"event": "end"} records: a trainer's whole run (also carry step::step).
namespace end {
inline constexpr const char *train_loss = "train_loss";
inline constexpr const char *val_loss = "val_loss";
inline constexpr const char *tokens = "tokens";
inline constexpr const char *elapsed_s = "elapsed_s";
inline constexpr const char *tokens_per_s = "tokens_per_s"; // tokens over elapsed_s: the whole run's rate
inline constexpr const char *stopped = "stopped";           // ended before train.steps (Ctrl-C, a callback, Stop)
inline constexpr const char *checkpoint = "checkpoint";
} // namespace end

// One MoE layer's entry in step.moe.
namespace moe {
inline constexpr const char *layer = "layer";
inline constexpr const char *tokens_per_expert = "tokens_per_expert";
inline constexpr const char *token_entropy = "token_entropy";
inline constexpr const char *load_entropy = "load_entropy";
inline constexpr const char *dropped_tokens = "dropped_tokens";
inline constexpr const char *dead_experts = "dead_experts";
inline constexpr const char *load_cv = "load_cv";
inline constexpr const char *losses = "losses";
} // namespace moe

} // namespace cdrmix::fields
