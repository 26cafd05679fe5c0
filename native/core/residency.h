#pragma once
// Which of a model's networks hold device memory, and how much. Every graph run of a network
// goes through enter(): it frees the other networks' compute buffers (those not running; on the
// CPU backend, see set_release_idle_compute), and with offload on also their weights, bringing its own weights back from the model file if they
// were freed, so at most one network's memory is on the device at a time. The accounting (weights and
// compute buffers per network, and the peak of their sum) is kept in both modes.
#include <atomic>
#include <cstddef>
#include <mutex>
#include <vector>

namespace sd {

class GraphRunner;
class ModelWeights;

enum class Network { text_encoder = 0, unet = 1, vae = 2 };
constexpr int kNetworkCount = 3;

struct DeviceUsage {
    size_t weights[kNetworkCount] = {0, 0, 0};
    size_t compute[kNetworkCount] = {0, 0, 0};
    size_t total = 0;  // weights + compute, all networks
    size_t peak = 0;   // the largest total seen since load or the last reset_peak()
};

class Residency {
public:
    Residency() = default;
    Residency(const Residency &) = delete;
    Residency & operator=(const Residency &) = delete;

    void set_weights(Network network, ModelWeights * weights) { weights_[static_cast<int>(network)] = weights; }
    void set_offload(bool offload) { offload_ = offload; }
    bool offload() const { return offload_; }
    // Whether entering a network frees the other networks' idle compute buffers without offload.
    void set_release_idle_compute(bool release) { release_idle_compute_ = release; }

    // Runners register for the life of their network object so that offload can free their
    // compute buffers; a runner must detach before it is destroyed.
    void attach(Network network, GraphRunner * runner);
    void detach(GraphRunner * runner);

    // Makes `network`'s weights usable. With offload on, the returned lock is held until the
    // caller is done with the network (one network of a model runs at a time then); without
    // offload it is empty. Throws like ModelWeights::upload (the others stay freed).
    std::unique_lock<std::mutex> enter(Network network);

    // Records the current total as a peak candidate; runners call it after allocating.
    void note_allocation();
    DeviceUsage usage() const;
    void reset_peak();

private:
    size_t total_locked() const;

    bool offload_ = false;
    bool release_idle_compute_ = true;
    ModelWeights * weights_[kNetworkCount] = {nullptr, nullptr, nullptr};
    std::mutex stage_mutex_;  // held across a network's use under offload
    mutable std::mutex registry_mutex_;
    std::vector<std::pair<Network, GraphRunner *>> runners_;
    size_t peak_ = 0;
};

} // namespace sd
