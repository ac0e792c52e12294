#!/usr/bin/env bash
# data_tools.sh CDRMIX WORK_DIR CORPUS
# The `cdrmix data` and `cdrmix tokenizer train` commands end to end on a copy
# of CORPUS: folder -> JSONL -> eval split -> tokenizer -> .bin -> stats and
# bench through the bin and jsonl sources, and the promised one-line errors.
set -u
cdrmix=$1 work=$2 corpus=$3
rm -rf "$work" && mkdir -p "$work/docs/sub"
fail=0
check() { # check NAME EXPECTED-REGEX COMMAND...: exit 0 and stdout matching
  local name=$1 pattern=$2 out
  shift 2
  if ! out=$("$@" 2>&1); then echo "FAIL $name: exit code $?"; printf '%s\n' "$out"; fail=1; return; fi
  if ! printf '%s\n' "$out" | grep -Eq -- "$pattern"; then echo "FAIL $name: output does not match /$pattern/"; printf '%s\n' "$out"; fail=1; return; fi
  echo "ok   $name"
}
refuse() { # refuse NAME FIRST-STDERR-LINE-REGEX COMMAND...: non-zero exit, first stderr line matching
  local name=$1 pattern=$2 err first
  shift 2
  if err=$("$@" 2>&1 >/dev/null); then echo "FAIL $name: exit code 0"; fail=1; return; fi
  first=$(printf '%s\n' "$err" | head -n 1)
  if ! printf '%s\n' "$first" | grep -Eq -- "$pattern"; then echo "FAIL $name: '$first' does not match /$pattern/"; fail=1; return; fi
  echo "ok   $name"
}

# Three documents cut from the corpus, one in a subfolder, plus a file to leave out.
head -c 40000 "$corpus" > "$work/docs/a.txt"
tail -c 30000 "$corpus" > "$work/docs/b.md"
head -c 60000 "$corpus" | tail -c 20000 > "$work/docs/sub/c.txt"
echo "binary" > "$work/docs/skip.dat"

check to-jsonl "wrote .*docs.jsonl: 3 records" "$cdrmix" data to-jsonl "$work/docs" -o "$work/docs.jsonl"
check split "train.jsonl \(2 records\) and .*val.jsonl \(1 records\)" "$cdrmix" data split "$work/docs.jsonl" -o "$work/split" --val-size 1
check tokenizer-train "trained a bpe tokenizer of 400 pieces" \
  "$cdrmix" tokenizer train "$work/split/train.jsonl" --vocab-size 400 -o "$work/tok.json"
check tokenize "wrote .*train.bin: [0-9]+ uint16 tokens \(sentencepiece, vocabulary 400\)" \
  "$cdrmix" data tokenize "$work/split/train.jsonl" -o "$work/train.bin" --tokenizer "$work/tok.json"
check tokenize-val "uint16 tokens" "$cdrmix" data tokenize "$work/split/val.jsonl" -o "$work/val.bin" --tokenizer "$work/tok.json"
check tokenize-char-u32 "uint32 tokens \(char" "$cdrmix" data tokenize "$work/docs" -o "$work/chars.bin" --tokenizer char --dtype uint32
check stats-jsonl "records +2 .*" "$cdrmix" data stats "$work/split/train.jsonl" --tokenizer "$work/tok.json"
check stats-bin "tokens +[0-9]+ \(token ids\)" "$cdrmix" data stats "$work/train.bin" --dtype uint16
check bench-bin "train batch 4 x seq_len 64: .* tokens/s" "$cdrmix" data bench type=bin "path=$work/train.bin" \
  "val_path=$work/val.bin" dtype=uint16 "tokenizer=$work/train.tokenizer.json" --batch-size 4 --seq-len 64 --seconds 0.2
check bench-jsonl "val +batch 4 x seq_len 64: .* tokens/s" "$cdrmix" data bench type=jsonl "path=$work/split/train.jsonl" \
  "val_path=$work/split/val.jsonl" "tokenizer=$work/tok.json" --batch-size 4 --seq-len 64 --seconds 0.2
check bench-char-bin "vocabulary" "$cdrmix" data bench type=bin "path=$work/chars.bin" dtype=uint32 \
  "tokenizer=$work/chars.tokenizer.json" --batch-size 4 --seq-len 64 --seconds 0.1

# Bad input: one line naming the file and sizes, or file:line.
head -c 5 "$work/train.bin" > "$work/truncated.bin"
refuse truncated-bin "truncated.bin: 5 bytes is not a whole number of uint16 tokens \(2 bytes each; 2 tokens and 1 bytes left over\)" \
  "$cdrmix" data stats "$work/truncated.bin" --dtype uint16
refuse truncated-bin-source "truncated.bin: 5 bytes is not a whole number of uint16 tokens" \
  "$cdrmix" data bench type=bin "path=$work/truncated.bin" dtype=uint16 vocab_size=400
printf '{"text": "fine"}\n{"text": "broken\n{"text": "fine again"}\n' > "$work/bad.jsonl"
refuse bad-jsonl-line "bad.jsonl:2: not valid JSON: " "$cdrmix" data tokenize "$work/bad.jsonl" -o "$work/bad.bin"
check bad-jsonl-skipped "1 malformed line\(s\) skipped" "$cdrmix" data tokenize "$work/bad.jsonl" -o "$work/bad.bin" --on-error skip
refuse bad-jsonl-source "bad.jsonl:2: not valid JSON: " "$cdrmix" data bench type=jsonl "path=$work/bad.jsonl" --seq-len 4 --batch-size 1
refuse unknown-key "unknown key 'shufle'" "$cdrmix" data bench type=bin "path=$work/train.bin" dtype=uint16 vocab_size=400 shufle=false
refuse split-too-big "has 3 records; the val split must take at least 1 and leave at least 1" \
  "$cdrmix" data split "$work/docs.jsonl" -o "$work/split2" --val-size 3
compgen -G "$work/*.tmp*" >/dev/null && { echo "FAIL: temporary file left behind"; fail=1; }
exit $fail
