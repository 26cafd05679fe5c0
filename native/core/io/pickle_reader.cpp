#include "io/pickle_reader.h"

#include <cstdio>
#include <cstring>

#include "sdcore/error.h"

namespace sd::pickle {

namespace {

struct AllowedGlobal {
    const char * module;
    const char * name;
    Callable callable;
    ggml_type storage_type = GGML_TYPE_COUNT;
    int64_t storage_element_size = 0;
};

// What torch.save writes for state dicts (and the data-only classes that full training
// checkpoints carry). Everything else is refused: a pickle names globals to call them.
const AllowedGlobal allowed_globals[] = {
    {"collections", "OrderedDict", Callable::ordered_dict},
    {"torch._utils", "_rebuild_tensor_v2", Callable::rebuild_tensor},
    {"torch._utils", "_rebuild_parameter", Callable::rebuild_parameter},
    {"torch._utils", "_rebuild_parameter_with_state", Callable::rebuild_parameter},
    {"torch", "Size", Callable::torch_size},
    {"torch", "FloatStorage", Callable::storage_type, GGML_TYPE_F32, 4},
    {"torch", "HalfStorage", Callable::storage_type, GGML_TYPE_F16, 2},
    {"torch", "BFloat16Storage", Callable::storage_type, GGML_TYPE_BF16, 2},
    {"torch", "DoubleStorage", Callable::storage_type, GGML_TYPE_F64, 8},
    {"torch", "LongStorage", Callable::storage_type, GGML_TYPE_I64, 8},
    {"torch", "IntStorage", Callable::storage_type, GGML_TYPE_I32, 4},
    {"torch", "ShortStorage", Callable::storage_type, GGML_TYPE_I16, 2},
    {"torch", "CharStorage", Callable::storage_type, GGML_TYPE_I8, 1},
    {"torch", "ByteStorage", Callable::storage_type, GGML_TYPE_COUNT, 1},
    {"torch", "BoolStorage", Callable::storage_type, GGML_TYPE_COUNT, 1},
    {"torch", "ComplexFloatStorage", Callable::storage_type, GGML_TYPE_COUNT, 8},
    {"torch", "ComplexDoubleStorage", Callable::storage_type, GGML_TYPE_COUNT, 16},
    {"numpy.core.multiarray", "scalar", Callable::opaque},
    {"numpy._core.multiarray", "scalar", Callable::opaque},
    {"numpy.core.multiarray", "_reconstruct", Callable::opaque},
    {"numpy._core.multiarray", "_reconstruct", Callable::opaque},
    {"numpy", "dtype", Callable::opaque},
    {"numpy", "ndarray", Callable::opaque},
    {"_codecs", "encode", Callable::opaque},
    {"builtins", "set", Callable::opaque},
    {"__builtin__", "set", Callable::opaque},
    {"pytorch_lightning.callbacks.model_checkpoint", "ModelCheckpoint", Callable::opaque},
};

// Opcodes (pickletools' names).
enum : uint8_t {
    MARK = '(', STOP = '.', POP = '0', POP_MARK = '1', DUP = '2', NONE = 'N', NEWTRUE = 0x88, NEWFALSE = 0x89,
    BININT = 'J', BININT1 = 'K', BININT2 = 'M', LONG1 = 0x8a, LONG4 = 0x8b, BINFLOAT = 'G',
    BINUNICODE = 'X', SHORT_BINUNICODE = 0x8c, BINUNICODE8 = 0x8d, BINSTRING = 'T', SHORT_BINSTRING = 'U',
    BINBYTES = 'B', SHORT_BINBYTES = 'C', BINBYTES8 = 0x8e,
    EMPTY_TUPLE = ')', TUPLE = 't', TUPLE1 = 0x85, TUPLE2 = 0x86, TUPLE3 = 0x87,
    EMPTY_LIST = ']', LIST = 'l', APPEND = 'a', APPENDS = 'e', EMPTY_DICT = '}', DICT = 'd', SETITEM = 's',
    SETITEMS = 'u', EMPTY_SET = 0x8f, ADDITEMS = 0x90, FROZENSET = 0x91,
    PUT = 'p', BINPUT = 'q', LONG_BINPUT = 'r', MEMOIZE = 0x94, GET = 'g', BINGET = 'h', LONG_BINGET = 'j',
    GLOBAL = 'c', STACK_GLOBAL = 0x93, INST = 'i', OBJ = 'o', REDUCE = 'R', NEWOBJ = 0x81, NEWOBJ_EX = 0x92,
    BUILD = 'b', BINPERSID = 'Q', PERSID = 'P', EXT1 = 0x82, EXT2 = 0x83, EXT4 = 0x84, PROTO = 0x80, FRAME = 0x95,
};

constexpr size_t max_objects = size_t(1) << 21;

bool is_int(const Object * o) { return o->kind == Kind::integer; }
bool is_text(const Object * o) { return o->kind == Kind::string; }
bool is_int_tuple(const Object * o) {
    if (o->kind != Kind::tuple) return false;
    for (const Object * item : o->items) {
        if (!is_int(item)) return false;
    }
    return true;
}

} // namespace

Unpickler::Unpickler(const uint8_t * data, size_t size, std::string path) : data_(data), size_(size), path_(std::move(path)) {}

void Unpickler::fail(const std::string & message) const {
    throw Error("ERR_MODEL_FORMAT", "Invalid checkpoint " + path_ + ": data.pkl " + message + " (at byte " + std::to_string(pos_) + ")", path_);
}

Object * Unpickler::make(Kind kind) {
    // Each opcode byte can make an object of ~200 bytes: bound what a crafted pickle can allocate.
    // A Stable Diffusion checkpoint needs ~15 objects per tensor, tens of thousands in all.
    if (arena_.size() >= max_objects) fail("holds more than " + std::to_string(max_objects) + " values");
    arena_.emplace_back();
    arena_.back().kind = kind;
    return &arena_.back();
}

Object * Unpickler::pop() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) fail("pops an empty stack");
    Object * o = stack_.back();
    stack_.pop_back();
    return o;
}

Object * Unpickler::top() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) fail("reads an empty stack");
    return stack_.back();
}

std::vector<Object *> Unpickler::pop_mark() {
    if (marks_.empty()) fail("uses a mark it never set");
    const size_t mark = marks_.back();
    marks_.pop_back();
    std::vector<Object *> items(stack_.begin() + static_cast<std::ptrdiff_t>(mark), stack_.end());
    stack_.resize(mark);
    return items;
}

uint64_t Unpickler::read_le(size_t bytes) {
    if (size_ - pos_ < bytes) fail("is truncated");
    uint64_t value = 0;
    for (size_t i = bytes; i-- > 0;) value = (value << 8) | data_[pos_ + i];
    pos_ += bytes;
    return value;
}

std::string Unpickler::read_bytes(uint64_t size) {
    if (size > size_ - pos_) fail("is truncated");
    std::string out(reinterpret_cast<const char *>(data_ + pos_), static_cast<size_t>(size));
    pos_ += static_cast<size_t>(size);
    return out;
}

std::string Unpickler::read_line() {
    const void * newline = std::memchr(data_ + pos_, '\n', size_ - pos_);
    if (!newline) fail("is truncated");
    const size_t end = static_cast<size_t>(static_cast<const uint8_t *>(newline) - data_);
    std::string line(reinterpret_cast<const char *>(data_ + pos_), end - pos_);
    pos_ = end + 1;
    return line;
}

Object * Unpickler::make_global(const std::string & module, const std::string & name) {
    for (const AllowedGlobal & allowed : allowed_globals) {
        if (module == allowed.module && name == allowed.name) {
            Object * o = make(Kind::global);
            o->text = module + "." + name;
            o->callable = allowed.callable;
            o->storage_type = allowed.storage_type;
            o->storage_type_name = name;
            o->storage_element_size = allowed.storage_element_size;
            return o;
        }
    }
    // Printable only: the name comes from the file and ends up in a message.
    std::string shown;
    for (char c : module + "." + name) shown += (c >= 0x20 && c < 0x7f) ? c : '?';
    if (shown.size() > 200) shown = shown.substr(0, 200) + "…";
    throw Error("ERR_UNSAFE_PICKLE",
                "Refusing to load " + path_ + ": its pickle references the global " + shown +
                    ", which a PyTorch state dict does not need (nothing from the file was run)",
                path_);
}

Object * Unpickler::rebuild_tensor(const Object * args) {
    // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
    if (args->kind != Kind::tuple || args->items.size() < 4) fail("calls _rebuild_tensor_v2 with too few arguments");
    const Object * storage = args->items[0];
    const Object * offset = args->items[1];
    const Object * size = args->items[2];
    const Object * stride = args->items[3];
    if (storage->kind != Kind::storage || !is_int(offset) || offset->integer < 0 || !is_int_tuple(size) ||
        !is_int_tuple(stride) || size->items.size() != stride->items.size()) {
        fail("calls _rebuild_tensor_v2 with arguments of the wrong types");
    }
    for (const Object * d : size->items) {
        if (d->integer < 0) fail("calls _rebuild_tensor_v2 with a negative size");
    }
    Object * tensor = make(Kind::tensor);
    tensor->storage = storage;
    tensor->storage_offset = offset->integer;
    for (const Object * d : size->items) tensor->size.push_back(d->integer);
    for (const Object * d : stride->items) tensor->stride.push_back(d->integer);
    return tensor;
}

Object * Unpickler::call(const Object * callable, const Object * args) {
    if (callable->kind != Kind::global) fail("calls something that is not a global");
    switch (callable->callable) {
        case Callable::ordered_dict: return make(Kind::dict);
        case Callable::rebuild_tensor: return rebuild_tensor(args);
        case Callable::rebuild_parameter:
            if (args->kind != Kind::tuple || args->items.empty() || args->items[0]->kind != Kind::tensor) {
                fail("calls _rebuild_parameter without a tensor");
            }
            return args->items[0];
        case Callable::torch_size:
            if (args->kind != Kind::tuple || args->items.size() != 1 || !is_int_tuple(args->items[0])) {
                fail("calls torch.Size without a tuple of integers");
            }
            return args->items[0];
        case Callable::storage_type: fail("calls a storage type");
        case Callable::opaque: break;
    }
    Object * o = make(Kind::opaque);
    o->text = callable->text;
    return o;
}

Object * Unpickler::persistent_load(const Object * pid) {
    // torch.save: ('storage', storage_type, key, location, numel)
    if (pid->kind != Kind::tuple || pid->items.size() != 5 || !is_text(pid->items[0]) ||
        pid->items[0]->text != "storage" || pid->items[1]->kind != Kind::global ||
        pid->items[1]->callable != Callable::storage_type || !is_text(pid->items[2]) || !is_int(pid->items[4]) ||
        pid->items[4]->integer < 0) {
        fail("has a persistent id that is not a torch storage");
    }
    Object * storage = make(Kind::storage);
    storage->text = pid->items[2]->text;
    storage->storage_type = pid->items[1]->storage_type;
    storage->storage_type_name = pid->items[1]->storage_type_name;
    storage->storage_element_size = pid->items[1]->storage_element_size;
    storage->storage_numel = pid->items[4]->integer;
    return storage;
}

const Object * Unpickler::load() {
    while (pos_ < size_) {
        const size_t at = pos_;
        const uint8_t op = data_[pos_++];
        switch (op) {
            case PROTO: read_le(1); break;
            case FRAME: read_le(8); break;  // frames only group opcodes
            case STOP: {
                Object * result = pop();
                if (!stack_.empty() || !marks_.empty()) fail("stops with values left on the stack");
                return result;
            }
            case MARK: marks_.push_back(stack_.size()); break;
            case POP: pop(); break;
            case POP_MARK: pop_mark(); break;
            case DUP: stack_.push_back(top()); break;
            case NONE: stack_.push_back(make(Kind::none)); break;
            case NEWTRUE:
            case NEWFALSE: {
                Object * o = make(Kind::boolean);
                o->boolean = op == NEWTRUE;
                stack_.push_back(o);
                break;
            }
            case BININT:
            case BININT1:
            case BININT2: {
                Object * o = make(Kind::integer);
                if (op == BININT) o->integer = static_cast<int32_t>(static_cast<uint32_t>(read_le(4)));
                else o->integer = static_cast<int64_t>(read_le(op == BININT1 ? 1 : 2));
                stack_.push_back(o);
                break;
            }
            case LONG1:
            case LONG4: {
                const uint64_t n = read_le(op == LONG1 ? 1 : 4);
                if (n > size_ - pos_) fail("is truncated");
                if (n > 8) {
                    // Beyond int64: nothing a state dict needs; kept as an opaque value.
                    pos_ += static_cast<size_t>(n);
                    Object * o = make(Kind::opaque);
                    o->text = "int";
                    stack_.push_back(o);
                    break;
                }
                uint64_t value = n == 0 ? 0 : read_le(static_cast<size_t>(n));
                if (n > 0 && n < 8 && (value >> (8 * n - 1)) & 1) value |= ~uint64_t(0) << (8 * n);  // sign-extend
                Object * o = make(Kind::integer);
                o->integer = static_cast<int64_t>(value);
                stack_.push_back(o);
                break;
            }
            case BINFLOAT: {
                if (size_ - pos_ < 8) fail("is truncated");
                uint64_t bits = 0;
                for (int i = 0; i < 8; ++i) bits = (bits << 8) | data_[pos_ + static_cast<size_t>(i)];  // big-endian
                pos_ += 8;
                Object * o = make(Kind::floating);
                std::memcpy(&o->floating, &bits, sizeof(double));
                stack_.push_back(o);
                break;
            }
            case BINUNICODE:
            case SHORT_BINUNICODE:
            case BINUNICODE8:
            case BINSTRING:
            case SHORT_BINSTRING:
            case BINBYTES:
            case SHORT_BINBYTES:
            case BINBYTES8: {
                const bool is_bytes = op == BINBYTES || op == SHORT_BINBYTES || op == BINBYTES8;
                const size_t width = (op == SHORT_BINUNICODE || op == SHORT_BINSTRING || op == SHORT_BINBYTES) ? 1
                                     : (op == BINUNICODE8 || op == BINBYTES8)                                   ? 8
                                                                                                                : 4;
                Object * o = make(is_bytes ? Kind::bytes : Kind::string);
                o->text = read_bytes(read_le(width));
                stack_.push_back(o);
                break;
            }
            case EMPTY_TUPLE: stack_.push_back(make(Kind::tuple)); break;
            case TUPLE:
            case TUPLE1:
            case TUPLE2:
            case TUPLE3: {
                Object * o = make(Kind::tuple);
                if (op == TUPLE) {
                    o->items = pop_mark();
                } else {
                    const size_t n = op == TUPLE1 ? 1 : op == TUPLE2 ? 2 : 3;
                    o->items.resize(n);
                    for (size_t i = n; i-- > 0;) o->items[i] = pop();
                }
                stack_.push_back(o);
                break;
            }
            case EMPTY_LIST:
            case EMPTY_SET: stack_.push_back(make(Kind::list)); break;
            case LIST:
            case FROZENSET: {
                Object * o = make(Kind::list);
                o->items = pop_mark();
                stack_.push_back(o);
                break;
            }
            case APPEND: {
                Object * value = pop();
                Object * list = top();
                if (list->kind != Kind::list) fail("appends to something that is not a list");
                list->items.push_back(value);
                break;
            }
            case APPENDS:
            case ADDITEMS: {
                std::vector<Object *> values = pop_mark();
                Object * list = top();
                if (list->kind != Kind::list) fail("appends to something that is not a list");
                list->items.insert(list->items.end(), values.begin(), values.end());
                break;
            }
            case EMPTY_DICT: stack_.push_back(make(Kind::dict)); break;
            case DICT:
            case SETITEMS: {
                std::vector<Object *> items = pop_mark();
                if (items.size() % 2 != 0) fail("has a dict with a key but no value");
                Object * dict = op == DICT ? make(Kind::dict) : top();
                if (dict->kind != Kind::dict) fail("sets items on something that is not a dict");
                for (size_t i = 0; i < items.size(); i += 2) dict->entries.emplace_back(items[i], items[i + 1]);
                if (op == DICT) stack_.push_back(dict);
                break;
            }
            case SETITEM: {
                Object * value = pop();
                Object * key = pop();
                Object * dict = top();
                if (dict->kind != Kind::dict) fail("sets an item on something that is not a dict");
                dict->entries.emplace_back(key, value);
                break;
            }
            case PUT:
            case BINPUT:
            case LONG_BINPUT:
            case MEMOIZE: {
                uint64_t key = memo_.size();
                if (op == BINPUT) key = read_le(1);
                else if (op == LONG_BINPUT) key = read_le(4);
                else if (op == PUT) key = std::strtoull(read_line().c_str(), nullptr, 10);
                memo_[key] = top();
                break;
            }
            case GET:
            case BINGET:
            case LONG_BINGET: {
                uint64_t key = op == BINGET ? read_le(1) : op == LONG_BINGET ? read_le(4) : std::strtoull(read_line().c_str(), nullptr, 10);
                auto it = memo_.find(key);
                if (it == memo_.end()) fail("reads a memo entry it never stored");
                stack_.push_back(it->second);
                break;
            }
            case GLOBAL: {
                std::string module = read_line();
                std::string name = read_line();
                stack_.push_back(make_global(module, name));
                break;
            }
            case STACK_GLOBAL: {
                Object * name = pop();
                Object * module = pop();
                if (!is_text(module) || !is_text(name)) fail("names a global with something that is not a string");
                stack_.push_back(make_global(module->text, name->text));
                break;
            }
            case INST: {
                std::string module = read_line();
                std::string name = read_line();
                Object * callable = make_global(module, name);
                Object * args = make(Kind::tuple);
                args->items = pop_mark();
                stack_.push_back(call(callable, args));
                break;
            }
            case OBJ: {
                std::vector<Object *> items = pop_mark();
                if (items.empty()) fail("uses OBJ without a class");
                Object * args = make(Kind::tuple);
                args->items.assign(items.begin() + 1, items.end());
                stack_.push_back(call(items[0], args));
                break;
            }
            case REDUCE:
            case NEWOBJ: {
                Object * args = pop();
                Object * callable = pop();
                stack_.push_back(call(callable, args));
                break;
            }
            case NEWOBJ_EX: {
                pop();  // kwargs
                Object * args = pop();
                Object * callable = pop();
                stack_.push_back(call(callable, args));
                break;
            }
            case BUILD: {
                // __setstate__ of a tensor, dict or opaque object: state dicts do not need it.
                pop();
                top();
                break;
            }
            case BINPERSID: stack_.push_back(persistent_load(pop())); break;
            case PERSID: fail("uses a text persistent id, which torch.save does not write");
            case EXT1:
            case EXT2:
            case EXT4:
                throw Error("ERR_UNSAFE_PICKLE",
                            "Refusing to load " + path_ + ": its pickle references a global through the copyreg "
                                "extension registry (nothing from the file was run)",
                            path_);
            default: {
                pos_ = at;
                char hex[8];
                std::snprintf(hex, sizeof(hex), "0x%02x", op);
                fail(std::string("uses the pickle opcode ") + hex + ", which torch.save does not write");
            }
        }
    }
    fail("ends without a STOP opcode (truncated file?)");
}

} // namespace sd::pickle
