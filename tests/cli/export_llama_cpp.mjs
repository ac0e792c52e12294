// node export_llama_cpp.mjs NODE_MODULES FILE.gguf CDRMIX_LOGITS.json TEXT: loads
// the GGUF in llama.cpp (node-llama-cpp's prebuilt libllama, CPU), evaluates
// the tokens CDRmix evaluated and prints one JSON line: the largest absolute
// difference between llama.cpp's raw logits and CDRmix's, the largest logit
// magnitude (for scale), and whether llama.cpp's rwkv tokenizer turned TEXT
// into the same tokens as CDRmix's tokenizer.
import fs from "fs";
import path from "path";
import { pathToFileURL } from "url";

const [modules, file, logitsFile, text] = process.argv.slice(2);
const { getLlama, LlamaLogLevel } = await import(pathToFileURL(path.join(modules, "node-llama-cpp/dist/index.js")).href);
const cdrmix = JSON.parse(fs.readFileSync(logitsFile, "utf8"));

const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath: file });
const context = await model.createContext({ contextSize: 256, batchSize: 256, sequences: 1 });
const withLogits = (t) => [t, { generateNext: { logits: true } }];

// The largest |llama.cpp - CDRmix| over every position and token, and the largest |logit|.
function compare(results) {
  let diff = 0, logit = 0;
  for (let i = 0; i < cdrmix.tokens.length; i++) {
    const logits = results[i]?.next?.logits;
    if (!logits) throw new Error(`llama.cpp returned no logits for position ${i}`);
    const row = cdrmix.logits[i];
    if (logits.size !== row.length) throw new Error(`position ${i}: ${logits.size} logits from llama.cpp, ${row.length} from CDRmix`);
    for (const [token, value] of logits) {
      diff = Math.max(diff, Math.abs(value - row[token]));
      logit = Math.max(logit, Math.abs(row[token]));
    }
  }
  return [diff, logit];
}
// The whole sentence in one batch, then token by token in a fresh sequence (llama.cpp's two paths).
const batched = await context.getSequence().controlledEvaluate(cdrmix.tokens.map(withLogits));
await context.dispose();
const stepContext = await model.createContext({ contextSize: 256, batchSize: 256, sequences: 1 });
const stepSequence = stepContext.getSequence();
const stepped = [];
for (const t of cdrmix.tokens) stepped.push((await stepSequence.controlledEvaluate([withLogits(t)]))[0]);
const [maxDiff, maxLogit] = compare(batched);
const [stepDiff] = compare(stepped);
const tokens = Array.from(model.tokenize(text));
console.log(JSON.stringify({ file: path.basename(file), positions: cdrmix.tokens.length, vocab: cdrmix.logits[0].length,
  max_abs_diff: maxDiff, max_abs_diff_token_by_token: stepDiff, max_abs_logit: maxLogit,
  same_tokens: JSON.stringify(tokens) === JSON.stringify(cdrmix.tokens) }));
await stepContext.dispose();
await model.dispose();
await llama.dispose();
