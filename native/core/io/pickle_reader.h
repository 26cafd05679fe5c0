#pragma once
// A restricted unpickler for the data.pkl of PyTorch checkpoints. It never runs anything: it
// builds a tree of plain values (dicts, lists, tuples, numbers, strings) and records tensors as
// references into storages. Only the globals torch.save writes for state dicts are accepted; any
// other global (os.system, builtins.eval, …) is refused with ERR_UNSAFE_PICKLE before the rest of
// the pickle is looked at.
#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ggml.h"

namespace sd::pickle {

enum class Kind { none, boolean, integer, floating, string, bytes, tuple, list, dict, global, storage, tensor, opaque };

// A global the allow-list accepts, and what calling it (REDUCE) produces.
enum class Callable {
    ordered_dict,       // collections.OrderedDict → an empty dict
    rebuild_tensor,     // torch._utils._rebuild_tensor_v2 → a tensor
    rebuild_parameter,  // torch._utils._rebuild_parameter(_with_state) → its tensor argument
    torch_size,         // torch.Size → its tuple argument
    storage_type,       // torch.FloatStorage etc.: only named by persistent ids, never called
    opaque,             // data-only classes full checkpoints carry (numpy scalars, Lightning
                        // callbacks): kept as an opaque value, their arguments ignored
};

struct Object {
    Kind kind = Kind::none;
    bool boolean = false;
    int64_t integer = 0;
    double floating = 0;
    std::string text;                                     // string, bytes, global/opaque name, storage key
    std::vector<Object *> items;                          // tuple, list, set
    std::vector<std::pair<Object *, Object *>> entries;   // dict, in insertion order
    Callable callable = Callable::opaque;                 // global
    // storage, and a global of Callable::storage_type: the element type (GGML_TYPE_COUNT when
    // ggml has no equivalent, e.g. bool, uint8), its torch name and size; a storage's element count
    ggml_type storage_type = GGML_TYPE_COUNT;
    std::string storage_type_name;
    int64_t storage_element_size = 0;
    int64_t storage_numel = 0;
    // tensor
    const Object * storage = nullptr;
    int64_t storage_offset = 0;  // in elements
    std::vector<int64_t> size, stride;
};

// Parses `data` (which must stay valid during load()). `path` names the file in errors.
// Throws sd::Error ERR_MODEL_FORMAT for malformed or unsupported pickles and ERR_UNSAFE_PICKLE for
// disallowed globals. The returned root and everything it refers to live as long as the Unpickler.
class Unpickler {
public:
    Unpickler(const uint8_t * data, size_t size, std::string path);
    const Object * load();

private:
    Object * make(Kind kind);
    Object * pop();
    Object * top();
    std::vector<Object *> pop_mark();
    Object * make_global(const std::string & module, const std::string & name);
    Object * call(const Object * callable, const Object * args);
    Object * rebuild_tensor(const Object * args);
    Object * persistent_load(const Object * pid);
    std::string read_line();
    uint64_t read_le(size_t bytes);
    std::string read_bytes(uint64_t size);
    [[noreturn]] void fail(const std::string & message) const;

    const uint8_t * data_;
    size_t size_;
    size_t pos_ = 0;
    std::string path_;
    std::deque<Object> arena_;  // owns every object; pointers stay valid as it grows
    std::vector<Object *> stack_;
    std::vector<size_t> marks_;
    std::unordered_map<uint64_t, Object *> memo_;
};

} // namespace sd::pickle
