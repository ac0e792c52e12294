#include "interop/import_torch_save.hpp"

#include "core/zip_bounds.hpp"

#include <cdrmix/error.hpp>

#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <unordered_map>
#include <vector>

namespace cdrmix {

namespace {

struct Value;
using Items = std::vector<Value>;

// A pickled value. Compound values are shared, as pickle's memo shares them, so
// a file that fetches one object many times costs no more memory than it has bytes.
struct Value {
    enum class Kind { None, Bool, Int, String, Tuple, List, Dict, Global, Tensor };
    Kind kind = Kind::None;
    int64_t number = 0;                      // Bool, Int
    std::shared_ptr<const std::string> text; // String; Global: "module.name"
    std::shared_ptr<Items> items;            // Tuple, List; Dict: keys and values alternating
    at::Tensor tensor;                       // Tensor (a storage is a 1-d tensor of its elements)
};

Value make(Value::Kind kind) {
    Value v;
    v.kind = kind;
    if (kind == Value::Kind::Tuple || kind == Value::Kind::List || kind == Value::Kind::Dict)
        v.items = std::make_shared<Items>();
    return v;
}

Value make_text(Value::Kind kind, std::string text) {
    Value v = make(kind);
    v.text = std::make_shared<const std::string>(std::move(text));
    return v;
}

Value make_int(Value::Kind kind, int64_t n) {
    Value v = make(kind);
    v.number = n;
    return v;
}

// Storage classes torch.save names in its persistent ids.
at::ScalarType storage_dtype(const std::string &global) {
    static const std::vector<std::pair<std::string, at::ScalarType>> types = {
        {"torch.FloatStorage", at::kFloat}, {"torch.DoubleStorage", at::kDouble}, {"torch.HalfStorage", at::kHalf},
        {"torch.BFloat16Storage", at::kBFloat16}, {"torch.LongStorage", at::kLong}, {"torch.IntStorage", at::kInt},
        {"torch.ShortStorage", at::kShort}, {"torch.CharStorage", at::kChar}, {"torch.ByteStorage", at::kByte},
        {"torch.BoolStorage", at::kBool}};
    for (const auto &[name, type] : types)
        if (name == global) return type;
    return at::ScalarType::Undefined;
}

class PickleReader {
public:
    PickleReader(const std::string &path, caffe2::serialize::PyTorchStreamReader &zip, const char *data, size_t size)
        : path_(path), zip_(zip), p_(data), end_(data + size) {}

    Value run() {
        for (;;) {
            const uint8_t op = byte();
            switch (op) {
            case 0x80: byte(); break; // PROTO
            case 0x95: bytes(8); break; // FRAME (protocol 4): a length hint
            case '.': // STOP
                if (stack_.size() != 1 || !marks_.empty()) fail("the pickle ends with a malformed stack");
                return stack_.back();
            case 'c': { // GLOBAL
                std::string module = line();
                push(make_text(Value::Kind::Global, module + "." + line()));
                break;
            }
            case 0x93: { // STACK_GLOBAL (protocol 4)
                const Value name = pop(), module = pop();
                if (name.kind != Value::Kind::String || module.kind != Value::Kind::String)
                    fail("STACK_GLOBAL of a non-string");
                push(make_text(Value::Kind::Global, *module.text + "." + *name.text));
                break;
            }
            case 'q': memo_[byte()] = top(); break;  // BINPUT
            case 'r': memo_[u32()] = top(); break;   // LONG_BINPUT
            case 0x94: memo_[uint32_t(memo_.size())] = top(); break; // MEMOIZE
            case 'h': push(memo(byte())); break;     // BINGET
            case 'j': push(memo(u32())); break;      // LONG_BINGET
            case '(': marks_.push_back(stack_.size()); break;
            case ')': push(make(Value::Kind::Tuple)); break;
            case 't': push(tuple(pop_to_mark())); break;
            case 0x85: case 0x86: case 0x87: { // TUPLE1..3
                const size_t n = size_t(op - 0x84);
                if (stack_.size() < n + floor()) fail("TUPLE" + std::to_string(n) + " on a short stack");
                Items items(stack_.end() - long(n), stack_.end());
                stack_.resize(stack_.size() - n);
                push(tuple(std::move(items)));
                break;
            }
            case '}': push(make(Value::Kind::Dict)); break;
            case ']': push(make(Value::Kind::List)); break;
            case 's': { // SETITEM
                Value v = pop(), k = pop();
                Items &dict = *container(Value::Kind::Dict).items;
                dict.push_back(std::move(k));
                dict.push_back(std::move(v));
                break;
            }
            case 'u': { // SETITEMS
                Items kv = pop_to_mark();
                if (kv.size() % 2) fail("SETITEMS with an odd number of items");
                Items &dict = *container(Value::Kind::Dict).items;
                dict.insert(dict.end(), kv.begin(), kv.end());
                break;
            }
            case 'a': { // APPEND
                Value v = pop();
                container(Value::Kind::List).items->push_back(v);
                break;
            }
            case 'e': { // APPENDS
                Items values = pop_to_mark();
                Items &list = *container(Value::Kind::List).items;
                list.insert(list.end(), values.begin(), values.end());
                break;
            }
            case 'X': push(make_text(Value::Kind::String, bytes(u32()))); break;  // BINUNICODE
            case 0x8c: push(make_text(Value::Kind::String, bytes(byte()))); break; // SHORT_BINUNICODE
            case 'J': push(make_int(Value::Kind::Int, int32_t(u32()))); break;     // BININT
            case 'K': push(make_int(Value::Kind::Int, byte())); break;             // BININT1
            case 'M': { // BININT2
                const uint32_t lo = byte();
                push(make_int(Value::Kind::Int, int64_t(lo | (uint32_t(byte()) << 8))));
                break;
            }
            case 0x8a: push(make_int(Value::Kind::Int, long1())); break;
            case 0x88: push(make_int(Value::Kind::Bool, 1)); break; // NEWTRUE
            case 0x89: push(make_int(Value::Kind::Bool, 0)); break; // NEWFALSE
            case 'N': push(make(Value::Kind::None)); break;
            case 'R': { // REDUCE
                Value args = pop(), callable = pop();
                push(reduce(callable, args));
                break;
            }
            case 'Q': push(storage(pop())); break; // BINPERSID
            default: {
                char hex[8];
                std::snprintf(hex, sizeof hex, "0x%02x", op);
                fail(std::string("unsupported pickle opcode ") + hex);
            }
            }
        }
    }

    [[noreturn]] void fail(const std::string &why) const {
        throw Error(path_ + ": not a readable torch.save file (" + why + ")");
    }

private:
    uint8_t byte() {
        if (p_ >= end_) fail("the pickle is cut short");
        return static_cast<uint8_t>(*p_++);
    }
    uint32_t u32() {
        uint32_t v = 0;
        for (int i = 0; i < 4; ++i) v |= uint32_t(byte()) << (8 * i);
        return v;
    }
    std::string bytes(size_t n) {
        if (n > size_t(end_ - p_)) fail("the pickle is cut short");
        std::string s(p_, n);
        p_ += n;
        return s;
    }
    std::string line() {
        const char *nl = static_cast<const char *>(std::memchr(p_, '\n', size_t(end_ - p_)));
        if (!nl) fail("the pickle is cut short");
        std::string s(p_, size_t(nl - p_));
        p_ = nl + 1;
        return s;
    }
    // LONG1: a little-endian two's-complement integer of up to 8 bytes.
    int64_t long1() {
        const size_t n = byte();
        if (n > 8) fail("an integer wider than 64 bits");
        uint64_t v = 0;
        for (size_t i = 0; i < n; ++i) v |= uint64_t(byte()) << (8 * i);
        if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t(0) << (8 * n);
        return static_cast<int64_t>(v);
    }

    size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
    void push(Value v) { stack_.push_back(std::move(v)); }
    Value pop() {
        if (stack_.size() <= floor()) fail("the pickle pops an empty stack");
        Value v = std::move(stack_.back());
        stack_.pop_back();
        return v;
    }
    const Value &top() const {
        if (stack_.size() <= floor()) fail("the pickle memoizes an empty stack");
        return stack_.back();
    }
    Value &container(Value::Kind kind) {
        if (stack_.size() <= floor() || stack_.back().kind != kind) fail("items added to something else");
        return stack_.back();
    }
    Items pop_to_mark() {
        if (marks_.empty()) fail("no MARK before a collection");
        Items items(stack_.begin() + long(marks_.back()), stack_.end());
        stack_.resize(marks_.back());
        marks_.pop_back();
        return items;
    }
    Value memo(uint32_t key) const {
        auto it = memo_.find(key);
        if (it == memo_.end()) fail("the pickle fetches an unknown memo entry");
        return it->second;
    }
    static Value tuple(Items items) {
        Value v = make(Value::Kind::Tuple);
        *v.items = std::move(items);
        return v;
    }

    const Items &tuple_args(const Value &args, size_t at_least, const std::string &of) const {
        if (args.kind != Value::Kind::Tuple || args.items->size() < at_least)
            fail(of + " called with " + std::to_string(args.items ? args.items->size() : 0) + " arguments");
        return *args.items;
    }

    std::vector<int64_t> ints(const Value &v, const std::string &what) const {
        if (v.kind != Value::Kind::Tuple) fail(what + " is not a tuple");
        std::vector<int64_t> out;
        for (const Value &i : *v.items) {
            if (i.kind != Value::Kind::Int || i.number < 0) fail(what + " holds a negative or non-integer entry");
            out.push_back(i.number);
        }
        return out;
    }

    Value reduce(const Value &callable, const Value &args) {
        if (callable.kind != Value::Kind::Global) fail("REDUCE of something that is not a class or function");
        const std::string &name = *callable.text;
        // The dict state_dict() returns, and the empty backward hooks of every tensor.
        if (name == "collections.OrderedDict") {
            if (!tuple_args(args, 0, name).empty()) fail("OrderedDict built from arguments");
            return make(Value::Kind::Dict);
        }
        if (name == "torch._utils._rebuild_tensor_v2") return rebuild_tensor(tuple_args(args, 5, name));
        // An nn.Parameter (tensor, requires_grad, hooks), and LibTorch's typed containers (value, type).
        if (name == "torch._utils._rebuild_parameter" || name == "torch.jit._pickle.restore_type_tag") {
            const Items &a = tuple_args(args, 2, name);
            return a[0];
        }
        fail("unsupported object " + name);
    }

    // _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata]): a view of the storage.
    Value rebuild_tensor(const Items &a) {
        if (a[0].kind != Value::Kind::Tensor || a[1].kind != Value::Kind::Int)
            fail("a tensor without its storage or offset");
        const std::vector<int64_t> size = ints(a[2], "a tensor's size"), stride = ints(a[3], "a tensor's stride");
        if (size.size() != stride.size()) fail("a tensor's size and stride differ in length");
        const at::Tensor &storage = a[0].tensor;
        const int64_t offset = a[1].number;
        if (offset < 0) fail("a tensor at a negative offset");
        // The last element the view reaches must lie inside the storage (overflow-checked).
        bool empty = false;
        uint64_t last = uint64_t(offset);
        for (size_t i = 0; i < size.size(); ++i) {
            if (size[i] == 0) empty = true;
            if (size[i] < 2 || stride[i] == 0) continue;
            const uint64_t span = uint64_t(size[i] - 1);
            if (span > (uint64_t(INT64_MAX) - last) / uint64_t(stride[i])) fail("a tensor's view overflows");
            last += span * uint64_t(stride[i]);
        }
        if (!empty && last >= uint64_t(storage.numel())) fail("a tensor reaches past its storage");
        Value v = make(Value::Kind::Tensor);
        v.tensor = empty ? at::empty(size, storage.options()) : storage.as_strided(size, stride, offset);
        return v;
    }

    // BINPERSID ('storage', torch.XStorage, key, location, numel): the data/KEY record's bytes.
    Value storage(const Value &pid) {
        const Items &a = tuple_args(pid, 5, "a persistent id");
        if (a[0].kind != Value::Kind::String || *a[0].text != "storage" || a[1].kind != Value::Kind::Global ||
            a[2].kind != Value::Kind::String || a[4].kind != Value::Kind::Int || a[4].number < 0)
            fail("a persistent id that is not a storage");
        const at::ScalarType dtype = storage_dtype(*a[1].text);
        if (dtype == at::ScalarType::Undefined) fail("unsupported storage " + *a[1].text);
        const std::string &key = *a[2].text;
        Value v = make(Value::Kind::Tensor);
        if (auto it = storages_.find(key); it != storages_.end()) {
            v.tensor = it->second;
            return v;
        }
        const std::string record = "data/" + key;
        if (!zip_.hasRecord(record)) fail("no record " + record);
        // LibTorch's zip reader throws c10::Error on a record it cannot extract (a corrupt header).
        std::tuple<at::DataPtr, size_t> got;
        try {
            got = zip_.getRecord(record);
        } catch (const c10::Error &e) {
            fail("record " + record + ": " + e.msg().substr(0, e.msg().find('\n')));
        }
        auto &[data, bytes] = got;
        const uint64_t numel = uint64_t(a[4].number), item = c10::elementSize(dtype);
        if (numel > UINT64_MAX / item || numel * item != bytes)
            fail("record " + record + " holds " + std::to_string(bytes) + " bytes, not " + std::to_string(numel) +
                 " elements of " + std::to_string(item));
        v.tensor = at::empty({int64_t(numel)}, at::TensorOptions().dtype(dtype));
        if (bytes) std::memcpy(v.tensor.data_ptr(), data.get(), bytes);
        storages_.emplace(key, v.tensor);
        return v;
    }

    const std::string &path_;
    caffe2::serialize::PyTorchStreamReader &zip_;
    const char *p_, *end_;
    Items stack_;
    std::vector<size_t> marks_;
    std::unordered_map<uint32_t, Value> memo_;
    std::unordered_map<std::string, at::Tensor> storages_;
};

} // namespace

std::map<std::string, at::Tensor> read_torch_save(const std::string &path) {
    std::unique_ptr<caffe2::serialize::PyTorchStreamReader> zip;
    std::tuple<at::DataPtr, size_t> pickle;
    check_zip_bounds(path); // before LibTorch's reader, which allocates what the directory claims
    try {
        zip = std::make_unique<caffe2::serialize::PyTorchStreamReader>(path);
        pickle = zip->getRecord("data.pkl");
    } catch (const c10::Error &e) {
        const std::string m = e.msg();
        throw Error(path + ": not a readable torch.save file (" + m.substr(0, m.find('\n')) + ")");
    }
    PickleReader reader(path, *zip, static_cast<const char *>(std::get<0>(pickle).get()), std::get<1>(pickle));
    const Value root = reader.run();
    if (root.kind != Value::Kind::Dict) reader.fail("it holds no dict of tensors");
    std::map<std::string, at::Tensor> out;
    const Items &kv = *root.items;
    for (size_t i = 0; i < kv.size(); i += 2) {
        if (kv[i].kind != Value::Kind::String) reader.fail("a key of its dict is not a string");
        const std::string &name = *kv[i].text;
        if (kv[i + 1].kind != Value::Kind::Tensor) reader.fail("'" + name + "' is not a tensor");
        if (!out.emplace(name, kv[i + 1].tensor).second) reader.fail("'" + name + "' appears twice");
    }
    return out;
}

} // namespace cdrmix
