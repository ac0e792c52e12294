// cdrmix.Model in Lua: assembled from a table or a YAML preset.
//   local model = cdrmix.model("configs/models/cdrmix-tiny.yaml", {vocab_size = data:vocab_size()})
//   local logits = model:forward(tokens)          -- [B,T] -> [B,T,V]
//   local loss, parts = model:loss(batch)         -- [B,T+1] -> scalar (+ {ce=, aux=})
//   local loss, parts = model:loss(batch, {routing = true}) -- parts.routing: per MoE layer statistics
//   local loss = model:loss(batch, mask)          -- mean over the targets the mask keeps (data:batch's 2nd value)
//   local logits, state = model:step(tokens, state) -- streaming: [B,T] from state (nil: the start)
//   model:generate(data, "ROMEO:", {max_tokens = 100, temperature = 0.8, top_k = 40, top_p = 0.9,
//                  seed = 1, stop = {"\n\n"}, on_text = function(piece) io.write(piece) end})
//                                                  -- on_text gets each piece as it forms; return false to stop
//   model:save("ckpt", data)                       -- weights, spec, tokenizer: eval/generate/cdrmix.load read it
//   local model, tokenizer = cdrmix.load("ckpt")   -- any checkpoint folder
//   local ev = model:evaluate(data, {split = "val", batch_size = 8, seq_len = 128, batches = 16})
//                                                  -- {loss =, perplexity =, tokens =, batches =}
//   local r = model:eval_chat(data, "held_out.jsonl", {max_tokens = 96, limit = 50, template = "cdrmix"})
//                                                  -- {tool_call_validity =, answer_accuracy =, ...}
#include "lua/wrap_model.hpp"

#include "chat/chat_eval.hpp"
#include "core/presets.hpp"
#include "dist/expert_parallel.hpp"
#include "core/yaml_config.hpp"
#include "lua/lua_util.hpp"
#include "lua/runtime.hpp"
#include "lua/wrap_data.hpp"
#include "lua/wrap_tensor.hpp"
#include "model/sampler.hpp"
#include "train/checkpoint.hpp"
#include "train/evaluate.hpp"
#include "train/masked_loss.hpp"
#include "train/trainer.hpp"

#include <cdrmix/error.hpp>

#include <torch/torch.h>

#include <cstdio>

namespace cdrmix::lua {

std::shared_ptr<Model> &check_model(lua_State *L, int idx) { return check<std::shared_ptr<Model>>(L, idx, kModel); }

namespace {

constexpr const char *kModelState = "cdrmix.ModelState";

// cdrmix.model(SPEC [, EXTRA]): SPEC a table, a YAML file or a preset name;
// EXTRA's keys are set on top (typically vocab_size from the data).
int l_model(lua_State *L) {
    Runtime &rt = Runtime::from(L);
    Config spec;
    if (lua_type(L, 1) == LUA_TSTRING) {
        const std::string path = resolve_preset(lua_tostring(L, 1));
        spec = Config(load_yaml_file(path), "model", path);
    } else {
        luaL_checktype(L, 1, LUA_TTABLE);
        spec = rt.config_of(L, 1, "model");
    }
    if (lua_istable(L, 2)) {
        Json merged = spec.value();
        Json extra = to_json(L, 2);
        for (auto it = extra.begin(); it != extra.end(); ++it) merged[it.key()] = it.value();
        spec = spec.with_value(std::move(merged), spec.owner());
    }
    ModelSpec model_spec = ModelSpec::from_config(spec);
    // Expert parallelism is placement: one process holds every expert.
    std::shared_ptr<ExpertParallel> experts;
    const int world = rt.dist_env().world_size;
    if (model_spec.expert_parallel > 1 && world > 1) {
        if (world % model_spec.expert_parallel != 0)
            throw Error(spec.where("expert_parallel") + ": expert_parallel " + std::to_string(model_spec.expert_parallel) +
                        " does not divide the world size " + std::to_string(world));
        experts = std::make_shared<ExpertParallel>(rt.dist(), model_spec.expert_parallel);
    }
    auto model = std::make_shared<Model>(std::move(model_spec), Registry::global(), experts);
    if (rt.options().device != model->device()) model->to(rt.options().device);
    rt.resolved()["model"] = spec.value();
    rt.write_resolved_config();
    push<std::shared_ptr<Model>>(L, model, kModel);
    return 1;
}

int l_forward(lua_State *L) {
    auto &m = check_model(L, 1);
    ForwardContext ctx;
    push_tensor(L, m->forward(check_tensor(L, 2).to(torch::kInt64), nullptr, ctx));
    return 1;
}

// model:loss(batch [, mask] [, {routing = true}]): the total loss and its
// parts; with a mask (data:batch's second value; nil: none) the cross-entropy
// is the trainer's masked_loss. With routing, parts.routing is the step
// records' `moe` list for this batch.
int l_loss(lua_State *L) {
    auto &m = check_model(L, 1);
    const torch::Tensor batch = check_tensor(L, 2).to(torch::kInt64);
    torch::Tensor mask;
    int options = 3;
    if (lua_isnil(L, 3) || test<at::Tensor>(L, 3, kTensor)) {
        if (!lua_isnil(L, 3)) mask = check_tensor(L, 3);
        options = 4;
    }
    bool routing = false;
    if (!lua_isnoneornil(L, options)) {
        luaL_checktype(L, options, LUA_TTABLE);
        lua_getfield(L, options, "routing");
        routing = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    LossOutput out = masked_loss(*m, batch, mask, routing);
    push_tensor(L, out.total);
    lua_newtable(L);
    push_tensor(L, out.ce);
    lua_setfield(L, -2, "ce");
    for (const auto &a : out.aux) {
        push_tensor(L, a.value);
        lua_setfield(L, -2, a.name.c_str());
    }
    if (routing) {
        push_json(L, router_stats_json(compute_router_stats(out.routing)));
        lua_setfield(L, -2, "routing");
    }
    return 2;
}

// model:step(tokens [, state]) -> logits, state: the model run on the next
// tokens [B,T] of a stream, from `state` (nil: the start). Returns a new
// state; the one passed in is left as it was, so a script can branch from it.
int l_step(lua_State *L) {
    auto &m = check_model(L, 1);
    const torch::Tensor tokens = check_tensor(L, 2).to(torch::kInt64);
    if (tokens.dim() != 2) throw Error("model:step: tokens are [B, T], got " + std::to_string(tokens.dim()) + "-d");
    ModelState next;
    if (!lua_isnoneornil(L, 3)) {
        const ModelState &prev = check<ModelState>(L, 3, kModelState);
        auto copy = [](const std::vector<BlockState> &states) {
            std::vector<BlockState> out;
            for (const auto &s : states) {
                BlockState c;
                for (const auto &t : s) c.push_back(t.defined() ? t.clone() : t);
                out.push_back(std::move(c));
            }
            return out;
        };
        next.mixer = copy(prev.mixer);
        next.ffn = copy(prev.ffn);
    }
    ForwardContext ctx;
    ctx.decoding = true;
    push_tensor(L, m->forward(tokens, &next, ctx));
    push<ModelState>(L, std::move(next), kModelState);
    return 2;
}

int l_num_parameters(lua_State *L) {
    lua_pushnumber(L, static_cast<lua_Number>(check_model(L, 1)->num_parameters()));
    return 1;
}

// model:parameters(): the model's own parameters (not copies), as a list in
// the model's order, the same on every rank (so a hand loop can all_reduce
// them one by one with ipairs); model:named_parameters(): {name = tensor}.
// A parameter's :grad() is what backward filled.
template <bool Named>
int l_parameters(lua_State *L) {
    auto &model = check_model(L, 1);
    lua_newtable(L);
    int i = 0;
    for (const auto &p : model->named_parameters()) {
        push_tensor(L, p.value());
        if (Named)
            lua_setfield(L, -2, p.key().c_str());
        else
            lua_rawseti(L, -2, ++i);
    }
    return 1;
}

// model:double() / model:float(): the parameters in float64 / float32, in
// place (float64 for tight numerical comparisons); returns the model.
template <torch::ScalarType T>
int l_model_to(lua_State *L) {
    check_model(L, 1)->to(T);
    lua_settop(L, 1);
    return 1;
}

int l_train_mode(lua_State *L) {
    check_model(L, 1)->train(lua_isnoneornil(L, 2) ? true : lua_toboolean(L, 2));
    return 0;
}

int l_eval_mode(lua_State *L) {
    check_model(L, 1)->eval();
    return 0;
}

int l_spec(lua_State *L) {
    push_json(L, check_model(L, 1)->spec().source_json);
    return 1;
}

int l_load(lua_State *L) {
    load_model_weights(*check_model(L, 1), luaL_checkstring(L, 2));
    return 0;
}

// model:save(dir, data_or_tokenizer): a checkpoint folder of the weights, the
// spec and the tokenizer (no training state), which `cdrmix eval`/`generate`,
// cdrmix.load and a trainer's resume (weights only) accept. dir must not exist
// or be empty; the folder appears whole or not at all. Returns its absolute path.
int l_save(lua_State *L) {
    Model &model = *check_model(L, 1);
    const std::string dir = luaL_checkstring(L, 2);
    const std::shared_ptr<Tokenizer> tokenizer = check_tokenizer(L, 3);
    const std::string path = save_derived_checkpoint(
        dir, model, *tokenizer, Json{{"source", "Model:save"}, {"script", Runtime::from(L).script_origin()}});
    lua_pushstring(L, path.c_str());
    return 1;
}

// cdrmix.load(dir) -> model, tokenizer: any checkpoint folder (a run's, an
// import's, a Model:save's), on the run's device.
int l_load_checkpoint(lua_State *L) {
    Runtime &rt = Runtime::from(L);
    LoadedCheckpoint c = load_checkpoint(luaL_checkstring(L, 1), Registry::global());
    if (rt.options().device != c.model->device()) c.model->to(rt.options().device);
    push<std::shared_ptr<Model>>(L, c.model, kModel);
    push<std::shared_ptr<Tokenizer>>(L, c.tokenizer, kTokenizer);
    return 2;
}

// Options table at idx: max_tokens, temperature, top_k, top_p, seed, stop (string or list).
SampleOptions sample_options(lua_State *L, int idx) {
    SampleOptions o;
    o.max_tokens = static_cast<int64_t>(opt_number_field(L, idx, "max_tokens", double(o.max_tokens)));
    o.temperature = opt_number_field(L, idx, "temperature", o.temperature);
    o.top_k = static_cast<int64_t>(opt_number_field(L, idx, "top_k", 0));
    o.top_p = opt_number_field(L, idx, "top_p", 1.0);
    o.seed = static_cast<uint64_t>(opt_number_field(L, idx, "seed", 0));
    if (lua_istable(L, idx)) {
        lua_getfield(L, idx, "stop");
        Json stop = lua_isnil(L, -1) ? Json() : to_json(L, -1);
        lua_pop(L, 1);
        if (stop.is_string()) o.stop.push_back(stop.get<std::string>());
        else if (stop.is_array())
            for (const auto &s : stop) o.stop.push_back(s.is_string() ? s.get<std::string>() : s.dump());
        else if (!stop.is_null()) throw Error("generate: 'stop' must be a string or a list of strings");
    }
    return o;
}

int l_generate(lua_State *L) {
    auto &m = check_model(L, 1);
    auto tok = check_tokenizer(L, 2);
    const std::string prompt = luaL_checkstring(L, 3);
    SampleOptions o = sample_options(L, 4);
    std::function<bool(const std::string &)> on_text;
    if (lua_istable(L, 4)) {
        lua_getfield(L, 4, "on_text");
        if (lua_isfunction(L, -1)) {
            const int fn = lua_gettop(L);
            on_text = [L, fn](const std::string &piece) {
                lua_pushvalue(L, fn);
                return call_with_json(L, piece);
            };
        } else {
            lua_pop(L, 1);
        }
    }
    std::string text = generate_until(*m, *tok, prompt, o, on_text);
    lua_pushlstring(L, text.data(), text.size());
    return 1;
}

int l_evaluate(lua_State *L) {
    auto &m = check_model(L, 1);
    auto &data = check_data(L, 2);
    const std::string split = opt_string_field(L, 3, "split", "val");
    if (split != "train" && split != "val") throw Error("evaluate: 'split' must be \"train\" or \"val\"");
    const Split sp = split == "train" ? Split::Train : Split::Val;
    const auto batch = static_cast<int64_t>(opt_number_field(L, 3, "batch_size", 8));
    const auto seq_len = static_cast<int64_t>(opt_number_field(L, 3, "seq_len", 128));
    const auto batches = static_cast<int64_t>(
        opt_number_field(L, 3, "batches", double(batches_to_cover(data->num_tokens(sp), batch, seq_len))));
    const EvalResult r = evaluate_split(*m, *data, sp, batch, seq_len, batches);
    push_json(L, Json{{"loss", r.loss}, {"perplexity", r.perplexity}, {"tokens", r.tokens}, {"batches", r.batches}});
    return 1;
}

// model:eval_chat(data_or_tokenizer, path [, {max_tokens, limit, template}]): chat/chat_eval.hpp.
int l_eval_chat(lua_State *L) {
    auto &m = check_model(L, 1);
    const std::shared_ptr<Tokenizer> tokenizer = check_tokenizer(L, 2);
    const std::string path = luaL_checkstring(L, 3);
    ChatEvalOptions o;
    o.max_tokens = static_cast<int64_t>(opt_number_field(L, 4, "max_tokens", double(o.max_tokens)));
    o.limit = static_cast<int64_t>(opt_number_field(L, 4, "limit", 0));
    if (o.max_tokens < 1 || o.limit < 0) throw Error("eval_chat: need max_tokens >= 1 and limit >= 0");
    const ChatTemplate tmpl = chat_template_from_spec(opt_string_field(L, 4, "template", "cdrmix"), "eval_chat");
    push_json(L, evaluate_chat(*m, *tokenizer, tmpl, path, o).to_json());
    return 1;
}

int l_state_tostring(lua_State *L) {
    const ModelState &s = check<ModelState>(L, 1, kModelState);
    lua_pushfstring(L, "cdrmix.ModelState(%d layers)", static_cast<int>(s.mixer.size()));
    return 1;
}

int l_model_tostring(lua_State *L) {
    auto &m = check_model(L, 1);
    char buf[160];
    std::snprintf(buf, sizeof buf, "cdrmix.Model(%s: %lld layers, hidden %lld, vocab %lld, %.2fM parameters)",
                  m->spec().name.c_str(), static_cast<long long>(m->spec().num_layers),
                  static_cast<long long>(m->spec().hidden_size), static_cast<long long>(m->spec().vocab_size),
                  double(m->num_parameters()) / 1e6);
    lua_pushstring(L, buf);
    return 1;
}

} // namespace

void open_model(lua_State *L) {
    static const luaL_Reg methods[] = {{"forward", safe<l_forward>},
                                       {"loss", safe<l_loss>},
                                       {"step", safe<l_step>},
                                       {"num_parameters", safe<l_num_parameters>},
                                       {"parameters", safe<l_parameters<false>>},
                                       {"named_parameters", safe<l_parameters<true>>},
                                       {"double", safe<l_model_to<torch::kFloat64>>},
                                       {"float", safe<l_model_to<torch::kFloat32>>},
                                       {"train", safe<l_train_mode>},
                                       {"eval", safe<l_eval_mode>},
                                       {"spec", safe<l_spec>},
                                       {"load", safe<l_load>},
                                       {"save", safe<l_save>},
                                       {"generate", safe<l_generate>},
                                       {"evaluate", safe<l_evaluate>},
                                       {"eval_chat", safe<l_eval_chat>},
                                       {nullptr, nullptr}};
    static const luaL_Reg meta[] = {{"__tostring", safe<l_model_tostring>}, {nullptr, nullptr}};
    define_class<std::shared_ptr<Model>>(L, kModel, methods, meta);
    static const luaL_Reg state_meta[] = {{"__tostring", safe<l_state_tostring>}, {nullptr, nullptr}};
    define_class<ModelState>(L, kModelState, nullptr, state_meta);
    static const luaL_Reg functions[] = {{"model", safe<l_model>}, {"load", safe<l_load_checkpoint>}, {nullptr, nullptr}};
    luaL_register(L, nullptr, functions);
}

} // namespace cdrmix::lua
