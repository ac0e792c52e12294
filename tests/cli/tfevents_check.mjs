// Reads a TensorBoard event file with independent code: CRC-32C from
// @aws-crypto/crc32c and the Event / Summary messages decoded by protobufjs
// from their .proto definitions (the fields of tensorflow's event.proto and
// summary.proto that TensorBoard reads). Prints one JSON line per event.
// Usage: node tfevents_check.mjs NODE_MODULES EVENTS_FILE
import { createRequire } from "module";
import { readFileSync } from "fs";

const [modules, file] = process.argv.slice(2);
const require = createRequire(modules + "/");
const { crc32c } = require("@aws-crypto/crc32c");
const protobuf = require("protobufjs");

const root = protobuf.parse(`
syntax = "proto3";
message PluginData { string plugin_name = 1; bytes content = 2; }
message SummaryMetadata { PluginData plugin_data = 1; }
message TensorShapeProto { }
message TensorProto { int32 dtype = 1; TensorShapeProto tensor_shape = 2; repeated bytes string_val = 8; }
message Value { string tag = 1; float simple_value = 2; TensorProto tensor = 8; SummaryMetadata metadata = 9; }
message Summary { repeated Value value = 1; }
message Event { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
`, { keepCase: true }).root;
const Event = root.lookupType("Event");

const masked = (buf) => {
  const c = crc32c(buf) >>> 0;
  return (((c >>> 15) | (c << 17)) + 0xa282ead8) >>> 0;
};
const data = readFileSync(file);
let at = 0;
while (at < data.length) {
  const header = data.subarray(at, at + 8);
  const length = Number(header.readBigUInt64LE(0));
  if (data.readUInt32LE(at + 8) !== masked(header)) throw new Error(`record at ${at}: length CRC mismatch`);
  const body = data.subarray(at + 12, at + 12 + length);
  if (data.readUInt32LE(at + 12 + length) !== masked(body)) throw new Error(`record at ${at}: data CRC mismatch`);
  const e = Event.toObject(Event.decode(body), { longs: Number });
  const out = { step: e.step || 0, wall_time: e.wall_time };
  if (e.file_version) out.file_version = e.file_version;
  for (const v of e.summary ? e.summary.value : []) {
    if (v.tensor) out[v.tag] = Buffer.from(v.tensor.string_val[0]).toString() + ` (plugin ${v.metadata.plugin_data.plugin_name})`;
    else out[v.tag] = v.simple_value;
  }
  console.log(JSON.stringify(out));
  at += 16 + length;
}
