// Arguments the commands that read a checkpoint share (eval, generate, inspect).
#pragma once

#include "train/checkpoint.hpp"

#include <cdrmix/config.hpp>
#include <cdrmix/data_source.hpp>
#include <cdrmix/tokenizer.hpp>

#include <memory>
#include <string>
#include <vector>

namespace cdrmix {

// CHECKPOINT as given: a checkpoint, run or checkpoints/ folder, or `auto`
// (the newest checkpoint under runs_dir).
std::string checkpoint_dir(const std::string &spec, const std::string &runs_dir);

// A training setting the checkpoint saved (batch_size, seq_len), or fallback.
int64_t saved_train_int(const LoadedCheckpoint &c, const char *key, int64_t fallback);

// The data source for --data arguments: the run's saved data config, replaced
// by a YAML file and/or patched by key=value settings. Refused in one line
// naming `command` when its tokenizer is not the checkpoint's.
std::shared_ptr<DataSource> checkpoint_data(const LoadedCheckpoint &ckpt, const std::vector<std::string> &specs,
                                            const std::string &command);

// "char, 65 tokens"
std::string describe_tokenizer(const Tokenizer &t);

} // namespace cdrmix
