#include "metrics/progress.hpp"

#include <cstdio>
#include <string>

namespace cdrmix {

std::string format_duration(double s) {
    if (!(s >= 0)) return "?";
    const long t = static_cast<long>(s + 0.5);
    char buf[32];
    if (t >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
    else if (t >= 60) std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
    else std::snprintf(buf, sizeof buf, "%lds", t);
    return buf;
}

ProgressSink::ProgressSink(bool tty, int64_t log_every) : tty_(tty), log_every_(std::max<int64_t>(1, log_every)) {}

void ProgressSink::clear_line() {
    if (bar_visible_) std::fputs("\r\033[2K", stdout);
    bar_visible_ = false;
}

void ProgressSink::draw(const Json &r) {
    const int64_t step = r.value("step", 0), total = r.value("total_steps", 0);
    const int width = 24;
    const double frac = total > 0 ? double(step) / double(total) : 0.0;
    const int filled = static_cast<int>(frac * width);
    std::string bar(static_cast<size_t>(filled), '#');
    bar += std::string(static_cast<size_t>(width - filled), '.');
    clear_line();
    std::printf("step %lld/%lld [%s] loss %.4f | %.0f tok/s | lr %.2e | ETA %s", static_cast<long long>(step),
                static_cast<long long>(total), bar.c_str(), r.value("loss", 0.0), r.value("tokens_per_s", 0.0),
                r.value("lr", 0.0), format_duration(r.value("eta_s", -1.0)).c_str());
    std::fflush(stdout);
    bar_visible_ = true;
}

void ProgressSink::write(const Json &r) {
    const std::string event = r.value("event", "");
    if (!tty_) {
        if (event == "step" && r.value("step", 0) % log_every_ != 0 && r.value("step", 0) != r.value("total_steps", -1))
            return;
        std::puts(r.dump(-1, ' ', false, Json::error_handler_t::replace).c_str());
        std::fflush(stdout);
        return;
    }
    if (event == "step") {
        const auto now = std::chrono::steady_clock::now();
        const bool last = r.value("step", 0) == r.value("total_steps", -1);
        if (last || now - last_draw_ > std::chrono::milliseconds(100)) {
            draw(r);
            last_draw_ = now;
        }
        return;
    }
    clear_line();
    if (event == "eval") {
        std::printf("eval @ step %lld: val loss %.4f, perplexity %.2f\n", static_cast<long long>(r.value("step", 0)),
                    r.value("val_loss", 0.0), r.value("val_ppl", 0.0));
    } else if (event == "checkpoint") {
        std::printf("checkpoint: %s\n", r.value("path", "").c_str());
    } else if (event == "run") {
        std::printf("run directory: %s\n", r.value("dir", "").c_str());
    } else if (event == "end") {
        std::printf("done: %lld steps in %s, %.0f tok/s\n", static_cast<long long>(r.value("step", 0)),
                    format_duration(r.value("elapsed_s", 0.0)).c_str(), r.value("tokens_per_s", 0.0));
    } else {
        Json shown = r;
        shown.erase("time");
        std::printf("%s\n", shown.dump(-1, ' ', false, Json::error_handler_t::replace).c_str());
    }
    std::fflush(stdout);
}

void ProgressSink::finish() {
    if (bar_visible_) std::fputs("\n", stdout);
    bar_visible_ = false;
    std::fflush(stdout);
}

} // namespace cdrmix
