#!/usr/bin/env bash
# chat_split.sh CDRMIX WORK_DIR
# The synthetic corpus as scripts/prepare-chat.sh writes it: no question of a
# test file is asked in the train file of its kind, and every file holds
# several distinct questions (so the check is not passed by empty files).
set -u
cdrmix=$1 work=$2
rm -rf "$work"
fail() { echo "FAIL: $*"; exit 1; }
scripts/prepare-chat.sh "$cdrmix" "$work" >/dev/null || fail "prepare-chat.sh"
python3 - "$work" <<'PY' || fail "train and test files share questions"
import json, sys
def questions(path):
    return [json.loads(line)["messages"][0]["content"] for line in open(path)]
for kind in ("instruct", "tools", "reasoning"):
    train = questions(f"{sys.argv[1]}/{kind}_train.jsonl")
    test = questions(f"{sys.argv[1]}/{kind}_test.jsonl")
    assert len(train) == 2000 and len(test) == 200, (kind, len(train), len(test))
    shared = set(train) & set(test)
    assert not shared, f"{kind}: {len(shared)} test questions are train questions, e.g. {sorted(shared)[:3]}"
    assert len(set(test)) >= 10 and len(set(train)) >= 50, (kind, len(set(test)), len(set(train)))
    print(f"{kind}: {len(set(train))} train questions, {len(set(test))} test questions, none shared")
PY
echo "chat_split: ok"
