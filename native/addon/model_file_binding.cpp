// inspectModelFile, readModelTensor and writeGguf: model files read and written on worker threads.
#include "model_file_binding.h"

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "sdcore/error.h"
#include "io/gguf_writer.h"
#include "js_tensor.h"
#include "io/model_file_reader.h"
#include "io/tensor_index.h"
#include "promise_worker.h"

namespace sdnode {

namespace {

std::string path_argument(const Napi::Value & value, const char * name) {
    Napi::Env env = value.Env();
    if (!value.IsString()) throw Napi::TypeError::New(env, std::string("Expected ") + name + " to be a string");
    std::string path = value.As<Napi::String>().Utf8Value();
    // The C APIs below would stop at a NUL and open a different file.
    if (path.find('\0') != std::string::npos) throw Napi::TypeError::New(env, std::string("Expected ") + name + " without NUL bytes");
    return path;
}

Napi::Array shape_array(Napi::Env env, const std::vector<int64_t> & shape) {
    Napi::Array array = Napi::Array::New(env, shape.size());
    for (size_t i = 0; i < shape.size(); ++i) array.Set(static_cast<uint32_t>(i), static_cast<double>(shape[i]));
    return array;
}

ggml_type write_type(Napi::Env env, const Napi::Value & value, uint32_t i) {
    if (!value.IsString()) throw Napi::TypeError::New(env, "Expected tensors[" + std::to_string(i) + "].type to be a string");
    const std::string name = value.As<Napi::String>().Utf8Value();
    for (int t = 0; t < GGML_TYPE_COUNT; ++t) {
        const ggml_type type = static_cast<ggml_type>(t);
        if (sd::is_gguf_write_type(type) && name == ggml_type_name(type)) return type;
    }
    throw Napi::RangeError::New(env, "Expected tensors[" + std::to_string(i) + "].type to be f32, f16, bf16, q8_0, q5_0, q5_1, q4_0 or q4_1");
}

// inspectModelFile(path) → Promise<{ format, path, metadata, tensors: [{ name, type, shape }] }>
Napi::Value InspectModelFile(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    std::string path = path_argument(info[0], "path");
    return PromiseWorker<sd::TensorIndex>::Start(
        env, [path] { return sd::read_model_file(path); },
        [](Napi::Env env, sd::TensorIndex && index) -> Napi::Value {
            Napi::Object result = Napi::Object::New(env);
            result.Set("format", sd::format_name(index.format));
            result.Set("path", index.path);
            Napi::Object metadata = Napi::Object::New(env);
            for (const auto & [key, value] : index.metadata) metadata.Set(key, value);
            result.Set("metadata", metadata);
            Napi::Array tensors = Napi::Array::New(env, index.tensors.size());
            for (size_t i = 0; i < index.tensors.size(); ++i) {
                const sd::TensorRecord & record = index.tensors[i];
                Napi::Object tensor = Napi::Object::New(env);
                tensor.Set("name", record.name);
                tensor.Set("type", ggml_type_name(record.type));
                tensor.Set("shape", shape_array(env, record.shape));
                tensors.Set(static_cast<uint32_t>(i), tensor);
            }
            result.Set("tensors", tensors);
            return result;
        });
}

// readModelTensor(path, name) → Promise<Tensor> (float32)
Napi::Value ReadModelTensor(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    std::string path = path_argument(info[0], "path");
    if (!info[1].IsString()) throw Napi::TypeError::New(env, "Expected name to be a string");
    std::string name = info[1].As<Napi::String>().Utf8Value();
    return PromiseWorker<sd::HostTensor>::Start(
        env,
        [path, name] {
            sd::TensorIndex index = sd::read_model_file(path);
            const sd::TensorRecord * record = index.find(name);
            if (!record) throw sd::Error("ERR_TENSOR_NOT_FOUND", "No tensor \"" + name + "\" in " + path, path);
            sd::HostTensor tensor(record->shape);
            sd::read_tensor_f32(*record, tensor.data.data());
            return tensor;
        },
        [](Napi::Env env, sd::HostTensor && tensor) -> Napi::Value { return make_js_tensor(env, std::move(tensor)); });
}

// writeGguf(path, [{ name, type, tensor }], metadata) → Promise<{ keptF16: string[] }>
Napi::Value WriteGguf(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    std::string path = path_argument(info[0], "path");
    if (!info[1].IsArray()) throw Napi::TypeError::New(env, "Expected tensors to be an array");
    if (!info[2].IsObject()) throw Napi::TypeError::New(env, "Expected metadata to be an object");
    Napi::Array list = info[1].As<Napi::Array>();

    std::vector<std::shared_ptr<JsTensorInput>> inputs;
    std::vector<sd::GgufTensorSource> sources;
    for (uint32_t i = 0; i < list.Length(); ++i) {
        Napi::Value item = list.Get(i);
        if (!item.IsObject()) throw Napi::TypeError::New(env, "Expected tensors[" + std::to_string(i) + "] to be an object");
        Napi::Object object = item.As<Napi::Object>();
        Napi::Value name = object.Get("name");
        if (!name.IsString()) throw Napi::TypeError::New(env, "Expected tensors[" + std::to_string(i) + "].name to be a string");
        auto input = std::make_shared<JsTensorInput>(object.Get("tensor"), "tensor");
        sd::GgufTensorSource source;
        source.name = name.As<Napi::String>().Utf8Value();
        source.type = write_type(env, object.Get("type"), i);
        source.shape = input->view().shape;
        const float * data = input->view().data;
        const size_t count = static_cast<size_t>(input->view().size());
        source.read = [data, count](float * out) { std::copy(data, data + count, out); };
        inputs.push_back(std::move(input));
        sources.push_back(std::move(source));
    }
    std::map<std::string, std::string> metadata;
    Napi::Object meta = info[2].As<Napi::Object>();
    Napi::Array keys = meta.GetPropertyNames();
    for (uint32_t i = 0; i < keys.Length(); ++i) {
        std::string key = keys.Get(i).ToString().Utf8Value();
        Napi::Value value = meta.Get(key);
        if (!value.IsString()) throw Napi::TypeError::New(env, "Expected metadata." + key + " to be a string");
        metadata[key] = value.As<Napi::String>().Utf8Value();
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
