#pragma once
// What a network loaded from a file of its own (TAESD, the upscaler, the safety checker, the depth
// estimator) needs to run, beside its file's description: a backend, its weights there, a graph
// runner on that backend, and the mutex that gives one call at a time that runner's memory.
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "io/tensor_index.h"
#include "io/weight_types.h"
#include "model/network_weights.h"
#include "runtime/ggml_handles.h"
#include "runtime/graph_runner.h"

namespace sd {

struct StandaloneNetwork {
    // Starts `backend` ("auto", a kind or a device name, as the models' load options) with
    // `threads` (0: the default) and uploads `tensors` in `weight_type` (nullopt: the files' own
    // types), then empties `tensors`: the weights hold their own copies, so the maps can go.
    StandaloneNetwork(std::vector<TensorRecord> & tensors, const std::string & backend, std::optional<WeightType> weight_type,
                      int threads, size_t max_nodes = GraphRunner::kDefaultMaxNodes);

    std::string device;  // the backend device's name, for the networks' info
    BackendPtr backend;
    std::unique_ptr<NetworkWeights> weights;
    std::mutex mutex;
    std::unique_ptr<GraphRunner> runner;  // declared after the backend it runs on
};

} // namespace sd
