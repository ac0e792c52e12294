// The sequence order every data source shares, and a ready-made DataSource
// over two token sequences (train and val) for the array-backed formats.
//
// A split of n tokens is cut into W = (n - 1) / T sequences of T + 1 tokens
// with stride T (sequence w is tokens [wT, wT + T], so each token after the
// first is a target exactly once). Each epoch visits them in a seeded
// permutation (train with shuffle) or in order (val, or shuffle = false); of
// that order, rank r of world_size takes positions r, r + world_size, ...,
// W / world_size of them, so every rank reads the same number and no sequence
// is read twice in an epoch (the W mod world_size left over are skipped that
// epoch). The position is the number of sequences this rank has consumed per
// split, so a restored source continues with exactly the next unseen batch.
//
// Threads: every function here may be called from any thread; a source made
// by make_window_source is used as any DataSource is (one thread at a time).
// Errors: cdrmix::Error, one line naming the config's owner or the split.
#pragma once

#include <cdrmix/config.hpp>
#include <cdrmix/data_source.hpp>
#include <cdrmix/schema.hpp>
#include <cdrmix/token_sequence.hpp>
#include <cdrmix/tokenizer.hpp>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>

namespace cdrmix {

// The keys every data source shares (seed, shuffle, rank, world_size), declared
// once: a data source's schema includes them (Schema::include).
Schema split_keys();

// Built by hand (a source with no config, such as the bench's), the members keep
// the same values as split_keys()'s defaults.
struct SplitOptions {
    uint64_t seed = 1234;
    bool shuffle = true;
    int64_t rank = 0;
    int64_t world_size = 1;
};
// Reads split_keys() from a config its schema resolved (defaults filled).
// Throws unless 0 <= rank < world_size.
SplitOptions read_split_options(const Config &cfg);

// val_fraction: the share of the data held out for validation. It has no
// filled default, so a source with a val_path can tell whether it was given;
// read_val_fraction returns the documented default when it was not.
Schema val_fraction_keys();
// val_fraction in (0, 1); throws naming the key otherwise.
double read_val_fraction(const Config &cfg);

// A bijection of [0, n) chosen by key (a Feistel network with cycle walking):
// a permutation of any size in O(1) memory.
int64_t permuted_index(int64_t i, int64_t n, uint64_t key);

// Mixes numbers into one well-spread 64-bit key.
uint64_t mix_key(std::initializer_list<uint64_t> parts);

struct WindowSourceParts {
    std::string type;        // the factory name; the position records it
    std::string where;       // Config::where(), for messages
    std::string description; // describe()
    std::shared_ptr<TokenSequence> train, val;
    std::shared_ptr<Tokenizer> tokenizer;
    SplitOptions split;
};

// Position JSON: {"source": type, "train": <sequences consumed>, "val": <sequences consumed>}.
// The caller owns the returned source; it shares the parts' sequences and tokenizer.
std::shared_ptr<DataSource> make_window_source(WindowSourceParts parts);

} // namespace cdrmix
