// A router or block written in Lua lives in a module file that returns its
// constructor:
//
//   return function(ctx, options)        -- ctx: where the module sits; options: the config's `options`
//     local m = {gate = cdrmix.parameter({ctx.num_experts, ctx.hidden_size})}
//     function m.route(x, input) ... end -- the methods the router or block contract asks for
//     return m
//   end
//
// Each instance owns its own LuaJIT state: a model's copies (the dashboard's
// sampler, thread ranks) run on other threads, and a state must never be
// shared between threads. The state has the standard libraries (text chunks
// only), the tensor API and the module functions (cdrmix.parameter,
// cdrmix.load_balance_loss, cdrmix.router_z_loss); `require` also searches the
// module file's folder.
//
// Parameters: every tensor reachable from the returned table when the
// constructor returns is registered on the C++ module, under its key path
// (nested tables become submodules): those requiring gradients as parameters,
// the rest as buffers. They are the same tensors the Lua code holds, so the
// optimiser, checkpoints, `describe` and Module::to see what Lua uses.
#pragma once

#include <cdrmix/config.hpp>

#include <torch/nn/module.h>
#include <lua.hpp>

#include <string>

namespace cdrmix::lua {

// Adds cdrmix.parameter, load_balance_loss and router_z_loss to the table at the top of the stack.
void open_module_functions(lua_State *L);

// Where a module file named by a config's `file` key is: an absolute path as
// it is, a relative one against the folder of the file the config came from
// (the script or YAML), then the working directory. Throws naming both places.
std::string resolve_module_file(const Config &config);

class ModuleState {
public:
    // Loads the config's `file` and calls its constructor with ctx and the
    // config's `options`. `kind` ("router", "block") names it in errors.
    ModuleState(const Config &config, const Json &ctx, const std::string &kind);
    ~ModuleState();
    ModuleState(const ModuleState &) = delete;
    ModuleState &operator=(const ModuleState &) = delete;

    lua_State *state() const { return L_; }
    const std::string &file() const { return file_; }
    // Registers the module table's tensors on owner (once, after construction).
    void register_tensors(torch::nn::Module &owner);
    // Whether the module table has a function of this name.
    bool has_method(const char *name) const;
    // Pushes the module table's function `name` (throws naming the file when it has none).
    void push_method(const char *name);
    // Calls the function below nargs arguments; leaves nresults values. A Lua
    // error becomes a cdrmix::Error with its file:line and the traceback's first frames.
    void call(int nargs, int nresults);
    // Ends a call: drops what it left on the stack and collects garbage, so
    // activations the call's temporaries hold are freed now, not at some later GC.
    void finish_call();

private:
    lua_State *L_ = nullptr;
    int module_ref_ = LUA_NOREF;
    std::string file_;
    std::string kind_;
};

} // namespace cdrmix::lua
