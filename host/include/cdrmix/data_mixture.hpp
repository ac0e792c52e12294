// Optional second face of a DataSource that draws its batches from several
// member sources (the `mix` data source). The trainer asks for it with
// dynamic_cast and, when present, reports each member's share of the train
// rows read in its step records and evaluates each member's val split.
//
// Header-only and separate from data_source.hpp on purpose: the DataSource
// contract (and so the plugin ABI) is unchanged, and a host that does not know
// this interface simply sees a plain source. The class has no out-of-line
// members, so no symbol of libcdrmix is needed to implement it (GCC's type_info
// comparison by name makes dynamic_cast across the plugin boundary work).
//
// Threads and ownership: as DataSource; member() returns a reference to a
// source the mixture owns, valid as long as the mixture.
#pragma once

#include <cdrmix/data_source.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace cdrmix {

struct MixMemberInfo {
    std::string name;       // unique within the mixture
    double weight = 0;      // normalised: the weights sum to 1
    int64_t train_rows = 0; // train rows (sequences) this member has supplied since the start (restored on resume)
};

class DataMixture {
public:
    virtual ~DataMixture() = default;
    virtual std::vector<MixMemberInfo> members() const = 0;
    // Member i (in members() order), to evaluate its own val split.
    virtual DataSource &member(size_t i) = 0;
};

} // namespace cdrmix
