// inspectModelFile, readModelTensor and writeGguf: model files read and written on worker threads.
#include "model_file_binding.h"

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "arguments.h"
#include "js_tensor.h"
#include "promise_worker.h"
#include "sdcore.h"

namespace sdnode {

namespace {

// inspectModelFile(path) → Promise<{ format, path, metadata, tensors: [{ name, type, shape }] }>
Napi::Value InspectModelFile(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    std::string path = args::path(args::at(info, 0));
    return PromiseWorker<sd::ModelFileInfo>::Start(
        env, [path] { return sd::inspect_model_file(path); },
        [](Napi::Env env, sd::ModelFileInfo && file) -> Napi::Value {
            Napi::Object result = Napi::Object::New(env);
            result.Set("format", sd::format_name(file.format));
            result.Set("path", file.path);
            Napi::Object metadata = Napi::Object::New(env);
            for (const auto & [key, value] : file.metadata) metadata.Set(key, value);
            result.Set("metadata", metadata);
            result.Set("tensors", tensor_info_array(env, file.tensors));
            return result;
        });
}

// readModelTensor(path, name) → Promise<Tensor> (float32)
Napi::Value ReadModelTensor(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    std::string path = args::path(args::at(info, 0));
    std::string name = args::string(args::at(info, 1), "name");
    return PromiseWorker<sd::HostTensor>::Start(
        env, [path, name] { return sd::read_model_file_tensor(path, name); },
        [](Napi::Env env, sd::HostTensor && tensor) -> Napi::Value { return make_js_tensor(env, std::move(tensor)); });
}

// writeGguf(path, [{ name, type, tensor }], metadata) → Promise<{ keptF16: string[] }>
Napi::Value WriteGguf(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    std::string path = args::path(args::at(info, 0));
    Napi::Array list = args::array(args::at(info, 1), "tensors");
    Napi::Object meta = args::object(args::at(info, 2), "metadata");

    std::vector<std::shared_ptr<JsTensorInput>> inputs;
    std::vector<sd::GgufTensorSource> sources;
    for (uint32_t i = 0; i < list.Length(); ++i) {
        const std::string at = "tensors[" + std::to_string(i) + "]";
        Napi::Object object = args::object(list.Get(i), at);
        sd::GgufTensorSource source;
        source.name = args::string(object.Get("name"), at + ".name");
        auto input = std::make_shared<JsTensorInput>(object.Get("tensor"), "tensor");
        const std::string type = args::string(object.Get("type"), at + ".type");
        source.type = args::guarded(env, [&] { return sd::parse_weight_type(type); });
        source.shape = input->view().shape;
        const float * data = input->view().data;
        const size_t count = static_cast<size_t>(input->view().size());
        source.read = [data, count](float * out) { std::copy(data, data + count, out); };
        inputs.push_back(std::move(input));
        sources.push_back(std::move(source));
    }
    std::map<std::string, std::string> metadata;
    Napi::Array keys = meta.GetPropertyNames();
    for (uint32_t i = 0; i < keys.Length(); ++i) {
        std::string key = keys.Get(i).ToString().Utf8Value();
        metadata[key] = args::string(meta.Get(key), "metadata." + key);
    }

    return PromiseWorker<sd::GgufWriteReport>::Start(
        env,
        // `inputs` keeps the Float32Arrays alive until the promise settles.
        [path, sources = std::move(sources), metadata = std::move(metadata), inputs = std::move(inputs)] {
            return sd::write_gguf(path, sources, metadata);
        },
        [](Napi::Env env, sd::GgufWriteReport && report) -> Napi::Value {
            Napi::Object result = Napi::Object::New(env);
            Napi::Array kept = Napi::Array::New(env, report.kept_f16.size());
            for (size_t i = 0; i < report.kept_f16.size(); ++i) kept.Set(static_cast<uint32_t>(i), report.kept_f16[i]);
            result.Set("keptF16", kept);
            return result;
        });
}

} // namespace

void register_model_file_binding(Napi::Env env, Napi::Object exports) {
    exports.Set("inspectModelFile", Napi::Function::New(env, InspectModelFile, "inspectModelFile"));
    exports.Set("readModelTensor", Napi::Function::New(env, ReadModelTensor, "readModelTensor"));
    exports.Set("writeGguf", Napi::Function::New(env, WriteGguf, "writeGguf"));
}

} // namespace sdnode
