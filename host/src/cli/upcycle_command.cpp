#include "cli/upcycle_command.hpp"

#include <cstdio>

namespace cdrmix {

UpcycleCommand::UpcycleCommand(CLI::App &app) {
    command_ = app.add_subcommand("upcycle", "Turn a dense checkpoint's FFNs into MoE layers of copies of them");
    command_->add_option("checkpoint", checkpoint_, "The dense model's checkpoint (folder, run folder, checkpoints/)")
        ->required();
    command_->add_option("-o,--out", out_, "The checkpoint folder to create (new or empty)")->required();
    command_->add_option("--experts", experts_, "Routed experts per MoE layer")->required();
    command_->add_option("--top-k", top_k_, "Experts per token")->required();
    command_->add_option("--moe-every", moe_every_, "Every N-th layer's FFN becomes an MoE layer (default 1: all)");
    command_->add_option("--shared-experts", shared_, "Always-on experts per MoE layer, copies too (default 0)");
    command_->add_option("--router", router_, "Router of every MoE layer (default topk)");
    command_->add_option("--noise", noise_, "Each copied weight times (1 + noise * N(0,1)), per expert (default 0)");
    command_->add_option("--seed", seed_, "Seed of the noise (default 0)");
    command_->footer("With noise 0 and a router whose chosen weights sum to 1 (topk), the upcycled model computes "
                     "what the dense one did; training then lets the experts diverge.");
}

int UpcycleCommand::run() const {
    // Checked by the same schema `cdrmix keys upcycle` prints.
    const Json settings = {{"checkpoint", checkpoint_}, {"out", out_},         {"experts", experts_},
                           {"top_k", top_k_},           {"moe_every", moe_every_}, {"shared_experts", shared_},
                           {"router", router_},         {"noise", noise_},     {"seed", seed_}};
    std::string report;
    upcycle(UpcycleOptions::from_config(Config(settings, "upcycle", "command line")), Registry::global(), &report);
    std::printf("%s\n", report.c_str());
    return 0;
}

} // namespace cdrmix
