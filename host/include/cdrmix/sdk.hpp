// Everything a plugin may include, in one header: every public header of the
// SDK. Each header states, for what it declares, which thread may call it, who
// owns what it returns and what it throws.
#pragma once

#include <cdrmix/atomic_file.hpp>     // write_file_atomic, write_json_atomic
#include <cdrmix/attention_utils.hpp> // RoPE and causal-attention helpers shared by attention blocks
#include <cdrmix/backend.hpp>         // Backend: a compute device
#include <cdrmix/block.hpp>           // Block, BlockContext, ForwardContext
#include <cdrmix/config.hpp>          // Config, ValueSources
#include <cdrmix/data_paths.hpp>      // path patterns of data sources
#include <cdrmix/data_source.hpp>     // DataSource
#include <cdrmix/error.hpp>           // Error: the one exception type for user errors
#include <cdrmix/expert_group.hpp>    // ExpertGroup: experts split over ranks (expert parallelism)
#include <cdrmix/jsonl.hpp>           // JSON-lines reading for data sources
#include <cdrmix/ops.hpp>             // cdrmix:: dispatcher ops (WKV-6, WKV-7)
#include <cdrmix/plugin.hpp>          // CDRMIX_PLUGIN
#include <cdrmix/registry.hpp>        // Registry, PluginKind, FactoryInfo
#include <cdrmix/router.hpp>          // Router, RouterContext, RoutingRecord, router losses and statistics
#include <cdrmix/rwkv7_lora.hpp>      // RWKV-7's default LoRA ranks
#include <cdrmix/schema.hpp>          // Schema: declared keys
#include <cdrmix/token_sequence.hpp>  // token files
#include <cdrmix/token_shift.hpp>     // RWKV's token shift
#include <cdrmix/tokenizer.hpp>       // Tokenizer
#include <cdrmix/torch_compat.hpp>    // LibTorch 1.x / 2.x differences
#include <cdrmix/version.hpp>         // SDK version
#include <cdrmix/window_source.hpp>   // the windowed token source data plugins build on
