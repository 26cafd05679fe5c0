#include "lora_binding.h"

#include <string>
#include <utility>

#include "arguments.h"
#include "promise_worker.h"

namespace sdnode {

sd::LoraSet lora_set_argument(const Napi::Value & value, const std::string & name) {
    sd::LoraSet set;
    if (value.IsUndefined()) return set;
    Napi::Array list = args::array(value, name, "an array of LoRAs");
    for (uint32_t i = 0; i < list.Length(); ++i) {
        const std::string at = name + "[" + std::to_string(i) + "]";
        Napi::Object entry = args::object(list.Get(i), at);
        sd::LoraRequest request;
        request.path = args::path(entry.Get("path"), at + ".path");
        request.text_encoder_weight = static_cast<float>(args::number(entry.Get("textEncoderWeight"), at + ".textEncoderWeight"));
        request.unet_weight = static_cast<float>(args::number(entry.Get("unetWeight"), at + ".unetWeight"));
        set.push_back(std::move(request));
    }
    return set;
}

Napi::Value prepare_loras(const Napi::CallbackInfo & info, const std::shared_ptr<sd::Model> & model) {
    Napi::Env env = info.Env();
    sd::LoraSet set = lora_set_argument(args::at(info, 0), "loras");
    return PromiseWorker<std::vector<sd::LoraFileReport>>::Start(
        env, [model, set = std::move(set)] { return sd::prepare_loras(*model, set); },
        [](Napi::Env env, std::vector<sd::LoraFileReport> && reports) -> Napi::Value {
            Napi::Array out = Napi::Array::New(env, reports.size());
            for (uint32_t i = 0; i < reports.size(); ++i) {
                const sd::LoraFileReport & r = reports[i];
                Napi::Object o = Napi::Object::New(env);
                o.Set("path", r.path);
                o.Set("format", r.format);
                o.Set("textEncoderLayers", r.text_encoder_layers);
                o.Set("unetLayers", r.unet_layers);
                Napi::Array unmatched = Napi::Array::New(env, r.unmatched.size());
                for (uint32_t k = 0; k < r.unmatched.size(); ++k) unmatched.Set(k, r.unmatched[k]);
                o.Set("unmatched", unmatched);
                out.Set(i, o);
            }
            return out;
        });
}

Napi::Value lora_status(const Napi::CallbackInfo & info, const sd::Model & model) {
    Napi::Env env = info.Env();
    sd::LoraStatus status = sd::lora_status(model);
    Napi::Object o = Napi::Object::New(env);
    o.Set("merged", status.merged);
    o.Set("runtime", status.runtime);
    o.Set("backupBytes", static_cast<double>(status.backup_bytes));
    o.Set("adapterBytes", static_cast<double>(status.adapter_bytes));
    o.Set("cachedFiles", static_cast<double>(status.cached_files));
    return o;
}

} // namespace sdnode
