// Everything a plugin may include, in one header.
#pragma once

#include <cdrmix/attention_utils.hpp>
#include <cdrmix/backend.hpp>
#include <cdrmix/block.hpp>
#include <cdrmix/config.hpp>
#include <cdrmix/data_source.hpp>
#include <cdrmix/error.hpp>
#include <cdrmix/ops.hpp>
#include <cdrmix/plugin.hpp>
#include <cdrmix/registry.hpp>
#include <cdrmix/router.hpp>
#include <cdrmix/token_shift.hpp>
#include <cdrmix/tokenizer.hpp>
#include <cdrmix/version.hpp>
