#include "cli/gui_sampler.hpp"

#include "lua/lua_util.hpp"
#include "model/routing_inspector.hpp"
#include "model/sampler.hpp"

#include <cdrmix/error.hpp>
#include <cdrmix/registry.hpp>

#include <torch/torch.h>

#include <map>

namespace cdrmix {

std::shared_ptr<const WeightSnapshot> snapshot_weights(Model &model, std::shared_ptr<Tokenizer> tokenizer, int64_t step) {
    torch::NoGradGuard no_grad;
    auto s = std::make_shared<WeightSnapshot>();
    s->step = step;
    s->spec = model.spec();
    s->tokenizer = std::move(tokenizer);
    for (const auto &p : model.named_parameters(true)) s->tensors.emplace_back(p.key(), p.value().detach().clone());
    for (const auto &b : model.named_buffers(true)) s->tensors.emplace_back(b.key(), b.value().detach().clone());
    return s;
}

SampleWorker::SampleWorker() : thread_([this] { loop(); }) {}

SampleWorker::~SampleWorker() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        quit_ = true;
    }
    wake_.notify_all();
    thread_.join();
}

void SampleWorker::start(std::shared_ptr<const WeightSnapshot> weights, SampleJob job) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (job_) return; // one sample at a time
        job_.emplace(std::move(weights), std::move(job));
        view_.busy = true;
        ++view_.revision;
    }
    wake_.notify_all();
}

void SampleWorker::inspect(std::shared_ptr<const WeightSnapshot> weights, std::string text) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (inspect_job_) return;
        inspect_job_.emplace(std::move(weights), std::move(text));
        view_.inspect_busy = true;
        ++view_.revision;
    }
    wake_.notify_all();
}

void SampleWorker::set_inspect_waiting(std::string status) {
    std::lock_guard<std::mutex> lock(mutex_);
    view_.inspect_status = std::move(status);
    view_.inspect_busy = true;
    ++view_.revision;
}

void SampleWorker::specialise(std::shared_ptr<const WeightSnapshot> weights, SpecialisationJob job) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (specialise_job_) return;
        specialise_job_.emplace(std::move(weights), std::move(job));
        view_.specialise_busy = true;
        ++view_.revision;
    }
    wake_.notify_all();
}

void SampleWorker::set_specialise_waiting(std::string status) {
    std::lock_guard<std::mutex> lock(mutex_);
    view_.specialise_status = std::move(status);
    view_.specialise_busy = true;
    ++view_.revision;
}

void SampleWorker::set_specialise_status(std::string status) {
    std::lock_guard<std::mutex> lock(mutex_);
    view_.specialise_status = std::move(status);
    view_.specialise_busy = false;
    ++view_.revision;
}

void SampleWorker::set_status(std::string status) {
    std::lock_guard<std::mutex> lock(mutex_);
    view_.status = std::move(status);
    ++view_.revision;
}

void SampleWorker::set_waiting(std::string status) {
    std::lock_guard<std::mutex> lock(mutex_);
    view_.status = std::move(status);
    view_.busy = true;
    ++view_.revision;
}

SampleWorker::View SampleWorker::view() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return view_;
}

void SampleWorker::loop() {
    // One intra-op thread: the training thread keeps its own count (OpenMP's is per thread).
    at::set_num_threads(1);
    enum class Kind { Inspect, Specialise, Sample };
    for (;;) {
        std::optional<std::pair<Weights, SampleJob>> sample;
        std::optional<std::pair<Weights, std::string>> inspection;
        std::optional<std::pair<Weights, SpecialisationJob>> specialisation;
        Kind kind;
        {
            std::unique_lock<std::mutex> lock(mutex_);
            wake_.wait(lock, [this] { return quit_ || job_ || inspect_job_ || specialise_job_; });
            if (quit_) return;
            if (inspect_job_) inspection = inspect_job_, kind = Kind::Inspect;
            else if (specialise_job_) specialisation = specialise_job_, kind = Kind::Specialise;
            else sample = job_, kind = Kind::Sample;
        }
        try {
            switch (kind) {
            case Kind::Inspect: run_inspection(*inspection->first, inspection->second); break;
            case Kind::Specialise: run_specialisation(*specialisation->first, specialisation->second); break;
            case Kind::Sample: run(*sample->first, sample->second); break;
            }
        } catch (const std::exception &e) {
            const std::string message = "error: " + lua::exception_message(e);
            std::lock_guard<std::mutex> lock(mutex_);
            (kind == Kind::Inspect ? view_.inspect_status : kind == Kind::Specialise ? view_.specialise_status : view_.status) =
                message;
        }
        std::lock_guard<std::mutex> lock(mutex_);
        switch (kind) {
        case Kind::Inspect: inspect_job_.reset(), view_.inspect_busy = false; break;
        case Kind::Specialise: specialise_job_.reset(), view_.specialise_busy = false; break;
        case Kind::Sample: job_.reset(), view_.busy = false; break;
        }
        ++view_.revision;
    }
}

Model &SampleWorker::load(const WeightSnapshot &w) {
    const std::string key = w.spec.source_json.dump() + "/" + std::to_string(w.spec.vocab_size);
    if (!model_ || key != model_key_) {
        model_ = std::make_shared<Model>(w.spec, Registry::global());
        model_key_ = key;
    }
    torch::NoGradGuard no_grad;
    std::map<std::string, torch::Tensor> mine;
    for (const auto &p : model_->named_parameters(true)) mine.emplace(p.key(), p.value());
    for (const auto &b : model_->named_buffers(true)) mine.emplace(b.key(), b.value());
    for (const auto &[name, t] : w.tensors) {
        auto it = mine.find(name);
        if (it == mine.end()) throw Error("sampler: the model copy has no tensor '" + name + "'");
        it->second.copy_(t);
    }
    return *model_;
}

void SampleWorker::run_inspection(const WeightSnapshot &w, const std::string &text) {
    Json routing = to_json(route_text(load(w), *w.tokenizer, text));
    std::lock_guard<std::mutex> lock(mutex_);
    view_.routing = std::move(routing);
    view_.inspect_status = "routing with the weights of step " + std::to_string(w.step);
}

void SampleWorker::run_specialisation(const WeightSnapshot &w, const SpecialisationJob &job) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        view_.specialise_status = "counting over " + std::to_string(job.batches) + " batches with the weights of step " +
                                  std::to_string(w.step);
        ++view_.revision;
    }
    auto data = Registry::global().create_data_source(job.data);
    if (data->tokenizer()->to_json() != w.tokenizer->to_json())
        throw Error("the data's tokenizer differs from the model's: token ids would not mean the same characters");
    ExpertSpecialisation counts(w.tokenizer->vocab_size());
    counts.add_split(load(w), *data, job.train_split ? Split::Train : Split::Val, job.batches, job.batch_size, job.seq_len);
    Json out = {{"split", job.train_split ? "train" : "val"},
                {"tokens", job.batches * job.batch_size * job.seq_len},
                {"step", w.step},
                {"layers", ExpertSpecialisation::to_json(counts.summary(*w.tokenizer, job.top), *w.tokenizer)}};
    std::lock_guard<std::mutex> lock(mutex_);
    view_.specialisation = std::move(out);
    view_.specialise_status = "over " + std::to_string(job.batches * job.batch_size * job.seq_len) + " " +
                              (job.train_split ? "train" : "val") + " tokens with the weights of step " + std::to_string(w.step);
}

void SampleWorker::run(const WeightSnapshot &w, const SampleJob &job) {
    set_status("building a copy of the model");
    Model &model = load(w);
    {
        std::lock_guard<std::mutex> lock(mutex_);
        view_.text = job.prompt;
        view_.status = "generating with the weights of step " + std::to_string(w.step);
        ++view_.revision;
    }
    SampleOptions opts;
    opts.max_tokens = job.max_tokens;
    opts.temperature = job.temperature;
    opts.top_k = job.top_k;
    opts.seed = static_cast<uint64_t>(w.step);
    generate(model, *w.tokenizer, job.prompt, opts, [this](const std::string &piece) {
        std::lock_guard<std::mutex> lock(mutex_);
        view_.text += piece;
        ++view_.revision;
    });
    set_status("weights of step " + std::to_string(w.step));
}

} // namespace cdrmix
