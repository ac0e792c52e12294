#!/usr/bin/env python3
"""make_seeds.py: writes the seed corpora, corpus/<target>/, a few small valid
and near-valid files per target. Rerun after changing it; the files are
committed so the fuzz run needs nothing but the build.

A harness that takes a leading selector byte (tokenizer_file, jsonl, bin_data)
gets it here too: see each fuzz_<target>.cpp.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TORCH_SAVE = os.path.join(HERE, "..", "cli", "torch_save.py")


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def safetensors(tensors, metadata=None):
    """tensors: [(name, dtype, shape, raw bytes)]"""
    header, blob = {}, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(raw)]}
        blob += raw
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + blob


f32 = lambda *v: struct.pack("<%df" % len(v), *v)
two = safetensors([("emb.weight", "F32", [2, 2], f32(1, 2, 3, 4)), ("ln.bias", "F16", [3], b"\x00\x3c" * 3)],
                  {"format": "pt"})
write("safetensors", "valid", two)
write("safetensors", "scalar_and_empty",
      safetensors([("s", "I64", [], struct.pack("<q", 7)), ("e", "BF16", [0, 5], b""), ("b", "BOOL", [2], b"\x01\x00")]))
write("safetensors", "truncated", two[:-3])
write("safetensors", "offsets_past_end",
      safetensors([("w", "F32", [2], f32(1, 2))]).replace(b"[0, 8]", b"[0, 9]"))

# .pth: the import test's writer, over a safetensors file of float tensors.
with tempfile.TemporaryDirectory() as tmp:
    for name, st in [("valid", two), ("one_tensor", safetensors([("w", "F64", [1, 3], struct.pack("<3d", 1, 2, 3))]))]:
        src, dst = os.path.join(tmp, "in.safetensors"), os.path.join(tmp, "out.pth")
        with open(src, "wb") as f:
            f.write(st)
        subprocess.run([sys.executable, TORCH_SAVE, src, dst], check=True)
        with open(dst, "rb") as f:
            archive = f.read()
        write("torch_save", name, archive)
        write("zip_bounds", name, archive)  # the directory check that runs before LibTorch's reader

write("yaml_config", "model", "model:\n  vocab_size: 256\n  hidden_size: 32\n  mixer: {type: rwkv7_time_mix, head_size: 16}\n"
      "  layers: [1, 2.5, -3e2, true, null, ~, 'quoted', \"esc\\u00e9\"]\n")
write("yaml_config", "anchors", "base: &b {lr: 0.001, steps: 10}\nrun:\n  <<: *b\n  list: [*b, *b]\n")
write("yaml_config", "not_a_mapping", "- a\n- b\n")
write("yaml_config", "hex_and_inf", "a: 0x10\nb: .inf\nc: 1e999\nd: 99999999999999999999\n")

world = "1 'a' 1\n2 'b' 1\n3 'ab' 2\n4 b'\\xff' 1\n5 '\\u00e9' 2\n6 \"\\n\" 1\n7 ' ' 1\n"
write("tokenizer_file", "world_txt", "\x01" + world)
write("tokenizer_file", "world_json", "\x00" + json.dumps({"kind": "world", "vocab": world, "vocab_size": 16}))
write("tokenizer_file", "byte_json", "\x00" + json.dumps({"kind": "byte"}))
write("tokenizer_file", "char_json", "\x00" + json.dumps({"kind": "char", "chars": ["a", "b", "\u00e9", " "]}))
write("tokenizer_file", "ids_json", "\x00" + json.dumps({"kind": "ids", "vocab_size": 50}))
write("tokenizer_file", "world_bad_line", "\x01" + "1 'a' 2\n1 'b' 1\n")

records = ('{"text": "hello world"}\n{"tokens": [1, 2, 3]}\n\n{"input_ids": [5, 6, 7], "attention_mask": [1, 1, 0]}\n'
           '{"text": 5}\n[1]\n{"tokens": [1, -1]}\nnot json\n')
for sel in (0, 1, 2, 3, 4, 8, 10):
    write("jsonl", "records_%d" % sel, bytes([sel]) + records.encode())

write("bin_data", "u16", b"\x02" + struct.pack("<6H", 0, 1, 2, 255, 7, 3))
write("bin_data", "u32", b"\x01" + struct.pack("<4I", 0, 70000, 2, 1))
write("bin_data", "u16_outside_vocab", b"\x02" + struct.pack("<3H", 1, 300, 2))
write("bin_data", "odd_size", b"\x00" + b"\x01\x02\x03")



def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


# checkpoint_json: byte 0 even: a manifest.json; odd: a trainer_state.json. The
# harness's folder holds model.safetensors ("weights") and tokenizer.json ("{}").
write("checkpoint_json", "manifest_ok", "\x00" + json.dumps({"format": "cdrmix checkpoint manifest 1", "files": {
    "model.safetensors": {"bytes": 7, "crc32c": "%08x" % crc32c(b"weights")},
    "tokenizer.json": {"bytes": 2, "crc32c": "%08x" % crc32c(b"{}")}}}))
write("checkpoint_json", "manifest_bad_entry", "\x00" + json.dumps({"files": {"../x": {"bytes": -1}}}))
write("checkpoint_json", "state", "\x01" + json.dumps({"step": 3, "data_position": {"train": 10}, "rng_state": "00ff" * 8}))
write("checkpoint_json", "state_odd_hex", "\x01" + json.dumps({"step": 1, "rng_state": "abc"}))

# chat: lines of conversations (tools, tool calls valid and not, bad roles); byte 0 'Y': a template file.
CALC = {"name": "calculator", "parameters": {"type": "object", "properties": {"expression": {"type": "string"}},
                                             "required": ["expression"]}}
write("chat", "conversations", "\n".join(json.dumps(r) for r in [
    {"tools": [CALC], "messages": [
        {"role": "user", "content": "2+3?"},
        {"role": "assistant", "tool_calls": [{"name": "calculator", "arguments": {"expression": "2+3"}}]},
        {"role": "tool", "content": "5"}, {"role": "assistant", "content": "5"}]},
    {"tools": [CALC], "messages": [{"role": "assistant", "content": "<tool_call>{\"name\": \"calculator\", \"arguments\": {}}</tool_call><tool_call>{"}]},
    {"tools": [{"type": "function", "function": CALC}], "messages": [
        {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "x", "arguments": "{\"a\": 1}"}}]}]},
    {"messages": [{"role": "bot", "content": "x"}]},
]) + "\n")
write("chat", "template", "Y" + "".join('%s: {prefix: "<%s>", suffix: "</%s>"}\n' % (p, p, p) for p in
                                      ["system", "user", "assistant", "tool", "tools", "tool_call"]))
