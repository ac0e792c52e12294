#!/usr/bin/env bash
# import.sh CDRMIX DIR CORPUS
# A dense RWKV-7 model trained for a few steps is written the way Python's
# torch.save writes a state dict (torch_save.py, no PyTorch needed), with a
# World vocabulary holding the same characters (each line Python's repr of
# one); `cdrmix import rwkv-lm` then gives a checkpoint whose eval loss and
# seeded samples equal the original's, `describe` reads its model.json, Lua's
# cdrmix.import gives the same logits, `cdrmix upcycle` turns it into an MoE
# with the same loss, and bad inputs fail with one line.
set -u
cdrmix=$1 dir=$2 corpus=$3
here=$(dirname "$0")
rm -rf "$dir"
mkdir -p "$dir"
fail() { echo "FAIL: $*"; exit 1; }

"$cdrmix" --threads 1 run tests/lua/dense_tiny.lua data.path="$corpus" --headless --runs-dir "$dir/runs" >/dev/null ||
  fail "training the dense model failed"
original=$(ls -d "$dir"/runs/dense_tiny-*/checkpoints/latest)
python3 "$here/torch_save.py" "$original/model.safetensors" "$dir/rwkv.pth" || fail "writing the .pth failed"
python3 - "$original/tokenizer.json" "$dir/vocab.txt" <<'PY' || fail "writing the World vocabulary failed"
import json, sys
chars = json.load(open(sys.argv[1]))["chars"]
with open(sys.argv[2], "w", encoding="utf-8") as f:
    for i, c in enumerate(chars):
        f.write(f"{i} {c!r} {len(c.encode('utf-8'))}\n")
PY

out=$("$cdrmix" --threads 1 import rwkv-lm "$dir/rwkv.pth" -o "$dir/imported" --vocab "$dir/vocab.txt") ||
  fail "import failed"
echo "$out"
echo "$out" | grep -q "2 layers, hidden size 64" || fail "the report does not describe the model"

data=(--data type=text --data path="$corpus" --data val_fraction=0.1 --batch-size 4 --seq-len 32 --batches 3 --json)
a=$("$cdrmix" --threads 1 eval "$original" "${data[@]}" --data tokenizer=char) || fail "eval of the original failed"
b=$("$cdrmix" --threads 1 eval "$dir/imported" "${data[@]}" --data tokenizer="$dir/imported/tokenizer.json") ||
  fail "eval of the import failed"
python3 - "$a" "$b" <<'PY' || fail "the imported model's loss differs"
import json, sys
a, b = (json.loads(s) for s in sys.argv[1:3])
print(f"eval loss: original {a['loss']:.9f}, imported {b['loss']:.9f}, difference {abs(a['loss'] - b['loss']):.3g}")
assert a["loss"] == b["loss"] and a["tokens"] == b["tokens"], (a, b)
PY

gen() { "$cdrmix" --threads 1 generate "$1" --prompt "The " --max-tokens 40 --seed 7 --top-k 10; }
s1=$(gen "$original") || fail "generate from the original failed"
s2=$(gen "$dir/imported") || fail "generate from the import failed"
echo "sample: $s2"
[ "$s1" = "$s2" ] || fail "the same seed gave different text: '$s1' vs '$s2'"

"$cdrmix" describe "$dir/imported/model.json" --json >/dev/null || fail "describe of the imported model.json failed"

# --resume with an imported checkpoint trains on from its weights, from step 0.
"$cdrmix" --threads 1 run tests/lua/dense_tiny.lua data.path="$corpus" --headless --runs-dir "$dir/runs-resumed" \
  --resume "$dir/imported" >/dev/null || fail "training from the import with --resume failed"
python3 - "$dir"/runs/dense_tiny-*/metrics.jsonl "$dir"/runs-resumed/dense_tiny-*/metrics.jsonl <<'PY' ||
import json, sys
fresh, resumed = ([json.loads(l) for l in open(p)] for p in sys.argv[1:3])
assert any(r.get("event") == "resume" and r.get("weights_only") and r["step"] == 0 for r in resumed), resumed[:3]
first = lambda records: next(r for r in records if r.get("event") == "step")
print(f"first step: loss {first(fresh)['loss']:.4f} from scratch, {first(resumed)['loss']:.4f} from the import")
assert first(resumed)["step"] == 1 and first(resumed)["loss"] < first(fresh)["loss"] - 0.1
PY
  fail "the resumed run did not start from the imported weights at step 0"

# Upcycled to an MoE of copies of its FFNs, the imported model computes what it did (to float32 rounding).
"$cdrmix" --threads 1 upcycle "$dir/imported" --experts 4 --top-k 2 -o "$dir/upcycled" || fail "upcycle failed"
c=$("$cdrmix" --threads 1 eval "$dir/upcycled" "${data[@]}" --data tokenizer="$dir/upcycled/tokenizer.json") ||
  fail "eval of the upcycled model failed"
python3 - "$b" "$c" <<'PY' || fail "the upcycled model's loss differs"
import json, sys
b, c = (json.loads(s) for s in sys.argv[1:3])
print(f"eval loss: imported {b['loss']:.9f}, upcycled {c['loss']:.9f}, difference {abs(b['loss'] - c['loss']):.3g}")
assert abs(b["loss"] - c["loss"]) < 1e-5, (b, c)
PY

"$cdrmix" --threads 1 run tests/lua/import.lua source="$dir/rwkv.pth" out="$dir/lua-imported" original="$original" \
  --headless --runs-dir "$dir/runs-lua" || fail "cdrmix.import from Lua"

# Bad inputs: a non-zero exit and one line naming the cause.
one_line_error() {
  local pattern=$1
  shift
  local err
  err=$("$@" 2>&1 >/dev/null) && fail "succeeded: $*"
  [ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] || fail "more than one line: $err"
  printf '%s\n' "$err" | grep -Eq -- "$pattern" || fail "unclear error: $err"
  echo "refused: $err"
}
head -c 3000 "$dir/rwkv.pth" >"$dir/truncated.pth"
one_line_error "truncated.pth: not a readable torch.save/LibTorch archive: no zip end record" "$cdrmix" import rwkv-lm "$dir/truncated.pth" -o "$dir/t"
[ -e "$dir/t" ] && fail "a failed import left $dir/t"
one_line_error "import \(command line\): key 'format' must be one of" "$cdrmix" import gguf "$dir/rwkv.pth" -o "$dir/t"
one_line_error "imported: exists and is not empty" "$cdrmix" import rwkv-lm "$dir/rwkv.pth" -o "$dir/imported"
echo "import: ok"
