#include "train/trainer.hpp"

#include "train/checkpoint.hpp"

#include <cdrmix/error.hpp>

#include <torch/torch.h>

#include <chrono>
#include <thread>
#include <cmath>

namespace cdrmix {

TrainConfig TrainConfig::from_config(const Config &c) {
    TrainConfig t;
    t.steps = c.get_int("steps", t.steps);
    t.batch_size = c.get_int("batch_size", t.batch_size);
    t.seq_len = c.get_int("seq_len", t.seq_len);
    t.schedule.lr = c.get_double("lr", t.schedule.lr);
    t.schedule.min_lr = c.get_double("min_lr", t.schedule.lr * 0.1);
    t.schedule.warmup_steps = c.get_int("warmup_steps", std::min<int64_t>(100, t.steps / 10));
    t.schedule.kind = c.get_string("schedule", t.schedule.kind);
    t.weight_decay = c.get_double("weight_decay", t.weight_decay);
    t.beta1 = c.get_double("beta1", t.beta1);
    t.beta2 = c.get_double("beta2", t.beta2);
    t.eps = c.get_double("eps", t.eps);
    t.grad_clip = c.get_double("grad_clip", t.grad_clip);
    t.eval_every = c.get_int("eval_every", t.eval_every);
    t.eval_batches = c.get_int("eval_batches", t.eval_batches);
    t.log_every = c.get_int("log_every", t.log_every);
    t.checkpoint_every = c.get_int("checkpoint_every", t.checkpoint_every);
    t.seed = static_cast<uint64_t>(c.get_int("seed", static_cast<int64_t>(t.seed)));
    t.schedule.total_steps = t.steps;
    if (t.steps <= 0 || t.batch_size <= 0 || t.seq_len <= 0)
        throw Error(c.where() + ": steps, batch_size and seq_len must be positive");
    if (t.schedule.lr <= 0) throw Error(c.where() + ": key 'lr' must be positive");
    t.schedule.at(0); // validates the schedule name now rather than mid-run
    return t;
}

Json TrainConfig::to_json() const {
    return {{"steps", steps},
            {"batch_size", batch_size},
            {"seq_len", seq_len},
            {"lr", schedule.lr},
            {"min_lr", schedule.min_lr},
            {"warmup_steps", schedule.warmup_steps},
            {"schedule", schedule.kind},
            {"weight_decay", weight_decay},
            {"beta1", beta1},
            {"beta2", beta2},
            {"eps", eps},
            {"grad_clip", grad_clip},
            {"eval_every", eval_every},
            {"eval_batches", eval_batches},
            {"log_every", log_every},
            {"checkpoint_every", checkpoint_every},
            {"seed", seed}};
}

std::unique_ptr<torch::optim::AdamW> make_adamw(Model &model, double lr, double weight_decay, double beta1,
                                                double beta2, double eps) {
    std::vector<torch::Tensor> decay, no_decay;
    for (const auto &p : model.named_parameters()) {
        if (!p.value().requires_grad()) continue;
        // RWKV-LM: decay only matrices; decaying vectors (norms, decay rates, mixes) hurts.
        const bool matrix = p.value().dim() >= 2 && p.key().size() >= 6 &&
                            p.key().compare(p.key().size() - 6, 6, "weight") == 0;
        (matrix ? decay : no_decay).push_back(p.value());
    }
    auto base = torch::optim::AdamWOptions(lr).betas({beta1, beta2}).eps(eps);
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(
                                   torch::optim::AdamWOptions(base).weight_decay(weight_decay)));
    groups.emplace_back(no_decay,
                        std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(base).weight_decay(0.0)));
    return std::make_unique<torch::optim::AdamW>(groups, base);
}

namespace {

void set_lr(torch::optim::AdamW &opt, double lr) {
    for (auto &g : opt.param_groups()) static_cast<torch::optim::AdamWOptions &>(g.options()).lr(lr);
}

Json stats_json(const std::vector<RouterStats> &stats) {
    Json arr = Json::array();
    for (const auto &s : stats) {
        Json losses = Json::object();
        for (const auto &l : s.losses) losses[l.first] = l.second;
        arr.push_back({{"layer", s.layer},
                       {"tokens_per_expert", s.tokens_per_expert},
                       {"token_entropy", s.token_entropy},
                       {"load_entropy", s.load_entropy},
                       {"dropped_tokens", s.dropped_tokens},
                       {"dead_experts", s.dead_experts},
                       {"load_cv", s.load_cv},
                       {"losses", losses}});
    }
    return arr;
}

} // namespace

Trainer::Trainer(std::shared_ptr<Model> model, std::shared_ptr<DataSource> data, TrainConfig config, MetricsBus &bus,
                 std::string checkpoint_root)
    : model_(std::move(model)), data_(std::move(data)), config_(std::move(config)), bus_(bus),
      checkpoint_root_(std::move(checkpoint_root)) {
    if (data_->tokenizer()->vocab_size() > model_->spec().vocab_size)
        throw Error("trainer: the data's vocabulary (" + std::to_string(data_->tokenizer()->vocab_size()) +
                    " tokens) is larger than the model's vocab_size (" + std::to_string(model_->spec().vocab_size) + ")");
    optimizer_ = make_adamw(*model_, config_.schedule.lr, config_.weight_decay, config_.beta1, config_.beta2, config_.eps);
}

Json Trainer::step_record(double loss, double aux, double grad_norm, double lr, double step_time,
                          const std::vector<RouterStats> &stats) {
    const double avg = elapsed_ / double(std::max<int64_t>(1, step_));
    Json r = {{"event", "step"},
              {"step", step_},
              {"total_steps", config_.steps},
              {"loss", loss},
              {"aux_loss", aux},
              {"lr", lr},
              {"grad_norm", grad_norm},
              {"step_time_s", step_time},
              {"tokens_per_s", elapsed_ > 0 ? double(tokens_) / elapsed_ : 0.0},
              {"elapsed_s", elapsed_},
              {"eta_s", avg * double(config_.steps - step_)}};
    if (!stats.empty()) r["moe"] = stats_json(stats);
    return r;
}

double Trainer::evaluate() {
    torch::NoGradGuard no_grad;
    model_->eval();
    data_->reset(Split::Val);
    double sum = 0;
    for (int64_t i = 0; i < config_.eval_batches; ++i)
        sum += model_->loss(data_->next_batch(Split::Val, config_.batch_size, config_.seq_len)).ce.item<double>();
    model_->train();
    // Every eval batch holds the same number of tokens, so the batch mean is the token mean.
    return sum / double(std::max<int64_t>(1, config_.eval_batches));
}

std::string Trainer::checkpoint() {
    Json state = {{"step", step_},
                  {"tokens", tokens_},
                  {"elapsed_s", elapsed_},
                  {"val_loss", last_val_loss_},
                  {"data_position", data_->position()},
                  {"train", config_.to_json()}};
    std::string path = save_checkpoint(checkpoint_root_, step_, *model_, *optimizer_, *data_->tokenizer(), state);
    bus_.publish({{"event", "checkpoint"}, {"step", step_}, {"path", path}});
    return path;
}

Json Trainer::run(const TrainCallbacks &cb) {
    torch::manual_seed(config_.seed);
    model_->train();
    double last_loss = 0;
    bool stop = false;
    while (step_ < config_.steps && !stop) {
        while (control_ && control_->pause && !control_->stop)
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        if (control_ && control_->stop) break;
        const auto t0 = std::chrono::steady_clock::now();
        const double lr = config_.schedule.at(step_);
        set_lr(*optimizer_, lr);
        torch::Tensor batch = data_->next_batch(Split::Train, config_.batch_size, config_.seq_len);
        optimizer_->zero_grad();
        LossOutput out = model_->loss(batch);
        const double loss = out.ce.item<double>();
        if (!std::isfinite(loss))
            throw Error("training diverged at step " + std::to_string(step_ + 1) + ": loss is " + std::to_string(loss) +
                        "; lower the learning rate (train.lr)");
        out.total.backward();
        double grad_norm = 0;
        if (config_.grad_clip > 0) {
            grad_norm = torch::nn::utils::clip_grad_norm_(model_->parameters(), config_.grad_clip);
        } else {
            for (const auto &p : model_->parameters())
                if (p.grad().defined()) grad_norm += p.grad().pow(2).sum().item<double>();
            grad_norm = std::sqrt(grad_norm);
        }
        optimizer_->step();
        ++step_;
        const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        elapsed_ += dt;
        tokens_ += batch.size(0) * (batch.size(1) - 1);
        last_loss = loss;

        double aux = 0;
        for (const auto &l : out.aux) aux += l.value.item<double>();
        Json rec = step_record(loss, aux, grad_norm, lr, dt, out.router_stats);
        bus_.publish(rec);
        if (cb.on_step && !cb.on_step(rec)) stop = true;

        if (control_ && control_->stop) stop = true;
        const bool last = step_ == config_.steps || stop;
        if ((config_.eval_every > 0 && step_ % config_.eval_every == 0) || last) {
            last_val_loss_ = evaluate();
            Json ev = {{"event", "eval"}, {"step", step_}, {"val_loss", last_val_loss_},
                       {"val_ppl", std::exp(last_val_loss_)}};
            bus_.publish(ev);
            if (cb.on_eval && !cb.on_eval(ev)) stop = true;
        }
        if (!checkpoint_root_.empty() &&
            ((config_.checkpoint_every > 0 && step_ % config_.checkpoint_every == 0) || last || stop ||
             (control_ && control_->checkpoint_now.exchange(false)))) {
            std::string path = checkpoint();
            if (cb.on_checkpoint && !cb.on_checkpoint({{"event", "checkpoint"}, {"step", step_}, {"path", path}}))
                stop = true;
        }
    }
    Json end = {{"event", "end"},          {"step", step_},
                {"train_loss", last_loss}, {"val_loss", last_val_loss_},
                {"tokens", tokens_},       {"elapsed_s", elapsed_},
                {"tokens_per_s", elapsed_ > 0 ? double(tokens_) / elapsed_ : 0.0}};
    bus_.publish(end);
    return end;
}

} // namespace cdrmix
