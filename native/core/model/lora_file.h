#pragma once
// One LoRA / LyCORIS file read and mapped onto a loaded model's weights (the formats are listed in
// sdcore/lora.h). Every module of the file becomes a LoraModule naming the canonical weight it
// changes, with its factors as float32 and its scale (alpha / rank); keys that change nothing in
// this model are listed. The change itself is computed by lora_delta (merging) or built into the
// graph from the factors (run time, model/lora_state.h).
#include <cstdint>
#include <string>
#include <vector>

#include "io/tensor_index.h"
#include "sdcore/lora.h"
#include "sdcore/model_config.h"
#include "sdcore/tensor.h"

namespace sd {

enum class LoraKind { lora, loha, lokr };

struct LoraModule {
    std::string key;                    // the module as the file names it (for messages)
    std::string target;                 // canonical weight, e.g. "unet.mid_block.attentions.0.proj_in.weight"
    Network network = Network::unet;
    LoraKind kind = LoraKind::lora;
    std::vector<int64_t> target_shape;  // the weight's shape, outermost first ([out, in] or [out, in, kh, kw])
    // The input channels the module was made for: fewer than the weight's only for an
    // inpainting or depth UNet's conv_in under a LoRA of a base model (the rest count as zeros).
    int64_t in_channels = 0;
    float scale = 1.0f;                 // alpha / rank, or 1
    int64_t rank = 0;
    // Row-major float32 matrices:
    //   lora: down [rank, in_channels·kh·kw], up [out, rank]
    //   loha: w1a [out, r], w1b [r, in_channels·kh·kw], w2a, w2b (the same shapes)
    //   lokr: w1 [a, b], w2 [c, d·kh·kw] with a·c = out, b·d = in_channels (products of their
    //         factors when the file splits them)
    std::vector<HostTensor> factors;
};

struct LoraFile {
    std::string path;
    std::string format;
    uint64_t size = 0;                  // the file's identity when it was read
    int64_t modified = 0;
    std::vector<LoraModule> modules;
    std::vector<std::string> unmatched;
    int text_encoder_layers = 0, unet_layers = 0;
};

// A weight of a model by its canonical name ("unet.conv_in.weight") and shape (outermost first).
struct LoraWeight {
    std::string name;
    std::vector<int64_t> shape;
};

// Reads a LoRA file for a model of `config` whose text encoder and UNet have `weights` (the linear
// and convolution weights among them are what a LoRA may change). Throws as sdcore/lora.h's
// prepare_loras says.
LoraFile read_lora_file(const std::string & path, const ModelConfig & config, const std::vector<LoraWeight> & weights);

// read_lora_file once the file is read (any container read_model_file takes; size and modified
// are left 0). Throws ERR_LORA_FORMAT, ERR_LORA_INCOMPATIBLE, RangeError as read_lora_file.
LoraFile map_lora_tensors(const TensorIndex & index, const ModelConfig & config, const std::vector<LoraWeight> & weights);

// A file's size and modification time (ns), or throws ERR_FILE_NOT_FOUND.
void lora_file_identity(const std::string & path, uint64_t & size, int64_t & modified);

// scale · delta of a module as float32, row-major in the weight's shape: [out, in·kh·kw] with
// the weight's own input channels (zero where the module has none). The call's weight is not in it.
std::vector<float> lora_delta(const LoraModule & module, int threads = 1);

// C[rows × cols] += alpha · A[rows × depth] · B[depth × cols], row-major; `threads` splits the rows.
void add_matmul(float * c, const float * a, const float * b, int64_t rows, int64_t cols, int64_t depth, float alpha,
                int threads = 1);

} // namespace sd
