#!/usr/bin/env bash
# The one set-up command. On a fresh Debian 12 machine it:
#   1. installs the Debian packages CDRmix needs (scripts/install-deps.sh; needs root or sudo),
#   2. builds the host, the SDK and the plugins, not the test suite (scripts/build.sh --main),
#   3. makes the default corpus from the `fortunes` package (scripts/prepare-corpus.sh),
#   4. runs the default experiment: a small RWKV-7 + MoE model trained for a few
#      minutes with a progress bar, then a generated sample.
# Safe to run again: finished steps are skipped, and each run gets a new runs/ folder.
# Arguments are passed to the experiment, e.g.: scripts/quickstart.sh train.steps=100
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
scripts/build.sh --main
scripts/prepare-corpus.sh
build/bin/cdrmix doctor || true  # a report, not a gate: the experiment runs either way
exec build/bin/cdrmix run experiments/quickstart.lua "$@"
