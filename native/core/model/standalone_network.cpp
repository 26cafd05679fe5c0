#include "model/standalone_network.h"

#include "runtime/backend_registry.h"

namespace sd {

StandaloneNetwork::StandaloneNetwork(std::vector<TensorRecord> & tensors, const std::string & backend_name,
                                     std::optional<WeightType> weight_type, int threads, size_t max_nodes) {
    const ggml_backend_dev_t dev = select_backend_or_device(backend_name);
    const int thread_count = threads > 0 ? threads : default_thread_count();
    device = ggml_backend_dev_name(dev);
    backend.reset(init_backend(dev, thread_count));
    weights = std::make_unique<NetworkWeights>(tensors, "", backend.get(), weight_type);
    tensors.clear();
    runner = std::make_unique<GraphRunner>(backend.get(), thread_count, max_nodes);
}

} // namespace sd
