// inspectModel and readCanonicalTensors: a model (file or diffusers folder) in canonical names,
// with what detection says about it. Mapping and detection run on a worker thread.
#include "model_binding.h"

#include <string>
#include <vector>

#include "arguments.h"
#include "js_tensor.h"
#include "promise_worker.h"
#include "sdcore.h"

namespace sdnode {

const char * const kNetworkNames[sd::kNetworkCount] = {"textEncoder", "unet", "vae"};

Napi::Object config_object(Napi::Env env, const sd::ModelConfig & c) {
    Napi::Object info = Napi::Object::New(env);
    info.Set("family", sd::family_name(c.family));
    info.Set("variant", sd::variant_name(c.variant));
    info.Set("predictionType", sd::prediction_type_name(c.prediction_type));
    info.Set("predictionTypeSource", c.prediction_source);
    info.Set("imageSize", c.image_size);
    info.Set("contextDim", c.unet.context_dim);

    Napi::Object unet = Napi::Object::New(env);
    unet.Set("inChannels", c.unet.in_channels);
    unet.Set("outChannels", c.unet.out_channels);
    unet.Set("blockChannels", number_array(env, c.unet.block_channels));
    Napi::Array attention = Napi::Array::New(env, c.unet.cross_attention.size());
    for (size_t i = 0; i < c.unet.cross_attention.size(); ++i) attention.Set(static_cast<uint32_t>(i), Napi::Boolean::New(env, c.unet.cross_attention[i]));
    unet.Set("crossAttention", attention);
    unet.Set("heads", number_array(env, c.unet.heads));
    unet.Set("layersPerBlock", c.unet.layers_per_block);
    unet.Set("transformerDepth", c.unet.transformer_depth);
    unet.Set("contextDim", c.unet.context_dim);
    unet.Set("timeEmbedDim", c.unet.time_embed_dim);
    unet.Set("linearProjection", c.unet.linear_projection);
    info.Set("unet", unet);

    Napi::Object vae = Napi::Object::New(env);
    vae.Set("blockChannels", number_array(env, c.vae.block_channels));
    vae.Set("layersPerBlock", c.vae.layers_per_block);
    vae.Set("latentChannels", c.vae.latent_channels);
    vae.Set("scalingFactor", c.vae.scaling_factor);
    info.Set("vae", vae);

    Napi::Object text = Napi::Object::New(env);
    text.Set("vocabSize", c.text.vocab_size);
    text.Set("maxPositions", c.text.max_positions);
    text.Set("hidden", c.text.hidden);
    text.Set("intermediate", c.text.intermediate);
    text.Set("heads", c.text.heads);
    text.Set("layers", c.text.layers);
    text.Set("layersUsed", c.text.layers_used);
    text.Set("activation", sd::activation_name(c.text.activation));
    text.Set("layerNormEps", c.text.layer_norm_eps);
    text.Set("padToken", c.text.pad_token);
    info.Set("textEncoder", text);
    return info;
}

namespace {

Napi::Object info_object(Napi::Env env, const sd::ModelInspection & inspection) {
    Napi::Object info = config_object(env, inspection.config);
    info.Set("layout", sd::layout_name(inspection.layout));
    info.Set("format", sd::format_name(inspection.format));
    info.Set("path", inspection.path);
    info.Set("ignoredTensors", static_cast<double>(inspection.ignored_tensors));
    Napi::Array unused = Napi::Array::New(env, inspection.unused_tensors.size());
    for (size_t i = 0; i < inspection.unused_tensors.size(); ++i) unused.Set(static_cast<uint32_t>(i), inspection.unused_tensors[i]);
    info.Set("unusedTensors", unused);
    return info;
}

// inspectModel(path, predictionType | undefined) → Promise<{ info, tensors: [{ name, shape, type }] }>
Napi::Value InspectModel(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    std::string path = args::path(args::at(info, 0));
    sd::DetectOptions options;
    Napi::Value prediction = args::at(info, 1);
    if (!prediction.IsUndefined()) {
        std::string name = args::string(prediction, "predictionType");
        options.prediction_type = args::guarded(env, [&] { return sd::prediction_type_from_name(name); });
    }
    return PromiseWorker<sd::ModelInspection>::Start(
        env, [path, options] { return sd::inspect_model(path, options); },
        [](Napi::Env env, sd::ModelInspection && inspection) -> Napi::Value {
            Napi::Object result = Napi::Object::New(env);
            result.Set("info", info_object(env, inspection));
            Napi::Array list = Napi::Array::New(env, inspection.tensors.size());
            for (size_t i = 0; i < inspection.tensors.size(); ++i) {
                const sd::TensorInfo & t = inspection.tensors[i];
                Napi::Object tensor = Napi::Object::New(env);
                tensor.Set("name", t.name);
                tensor.Set("shape", number_array(env, t.shape));
                tensor.Set("type", t.type);
                list.Set(static_cast<uint32_t>(i), tensor);
            }
            result.Set("tensors", list);
            return result;
        });
}

// readCanonicalTensors(path, names) → Promise<Tensor[]> (float32): one mapping for many reads.
Napi::Value ReadCanonicalTensors(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    std::string path = args::path(args::at(info, 0));
    std::vector<std::string> names = args::strings(args::at(info, 1), "names");
    return PromiseWorker<std::vector<sd::HostTensor>>::Start(
        env, [path, names] { return sd::read_canonical_tensors(path, names); },
        [](Napi::Env env, std::vector<sd::HostTensor> && tensors) -> Napi::Value {
            Napi::Array result = Napi::Array::New(env, tensors.size());
            for (size_t i = 0; i < tensors.size(); ++i) result.Set(static_cast<uint32_t>(i), make_js_tensor(env, std::move(tensors[i])));
            return result;
        });
}

} // namespace

void register_model_binding(Napi::Env env, Napi::Object exports) {
    exports.Set("inspectModel", Napi::Function::New(env, InspectModel, "inspectModel"));
    exports.Set("readCanonicalTensors", Napi::Function::New(env, ReadCanonicalTensors, "readCanonicalTensors"));
}

} // namespace sdnode
