#pragma once
// Which of a model's networks hold device memory, and how much. Every graph run of a network
// goes through enter(): it frees the other networks' compute buffers (those not running; on the
// CPU backend, see set_release_idle_compute), and with offload on also their weights, bringing
// its own weights back from the model file if they were freed, so at most one network's memory
// is held at a time. The accounting (weights and compute buffers per network, and the peak of
// their sum, in all and per device when the networks are placed on different devices) is kept
// in both modes.
#include <atomic>
#include <cstddef>
#include <mutex>
#include <vector>

#include "sdcore/model.h"

namespace sd {

// What Residency manages, through two small interfaces, so that it depends neither on the
// model's weights (model/network_weights.h) nor on the graph runner (graph_runner.h), which
// implement them.
//
// A network's weights: their device buffer can be freed and filled again (only with offload).
class ResidentWeights {
public:
    // Bytes of the device buffer now allocated (0 while released).
    virtual size_t bytes() const = 0;
    virtual void release() = 0;
    virtual void ensure_resident() = 0;

protected:
    ~ResidentWeights() = default;
};

// A graph runner's compute buffer.
class ComputeBuffer {
public:
    virtual size_t compute_buffer_bytes() const = 0;
    // Frees the buffer; not while a graph runs on it (Residency guarantees that under offload).
    virtual void release() = 0;
    // Frees the buffer unless a graph is running on it (on another thread); true if it did.
    virtual bool release_if_idle() = 0;

protected:
    ~ComputeBuffer() = default;
};

class Residency {
public:
    Residency() = default;
    Residency(const Residency &) = delete;
    Residency & operator=(const Residency &) = delete;

    void set_weights(Network network, ResidentWeights * weights) { weights_[static_cast<int>(network)] = weights; }
    void set_offload(bool offload) { offload_ = offload; }
    bool offload() const { return offload_; }
    // The device slot `network` is placed on (0 when all share one device).
    void set_device(Network network, int slot);
    // Whether entering another network frees `network`'s idle compute buffer without offload.
    void set_release_idle_compute(Network network, bool release) { release_idle_compute_[static_cast<int>(network)] = release; }

    // Runners register for the life of their network object so that offload can free their
    // compute buffers; a runner must detach before it is destroyed.
    void attach(Network network, ComputeBuffer * runner);
    void detach(ComputeBuffer * runner);

    // Makes `network`'s weights usable. With offload on, the returned lock is held until the
    // caller is done with the network (one network of a model runs at a time then); without
    // offload it is empty. Throws like ResidentWeights::ensure_resident (the others stay freed).
    std::unique_lock<std::mutex> enter(Network network);

    // Records the current total as a peak candidate; runners call it after allocating.
    void note_allocation();
    DeviceUsage usage() const;
    void reset_peak();

private:
    // Weights and compute buffers of the networks on device `slot`, or of all for slot -1.
    size_t total_locked(int slot = -1) const;

    bool offload_ = false;
    bool release_idle_compute_[kNetworkCount] = {true, true, true};
    int device_of_[kNetworkCount] = {0, 0, 0};
    int devices_ = 1;
    ResidentWeights * weights_[kNetworkCount] = {nullptr, nullptr, nullptr};
    std::mutex stage_mutex_;  // held across a network's use under offload
    mutable std::mutex registry_mutex_;
    std::vector<std::pair<Network, ComputeBuffer *>> runners_;
    size_t peak_ = 0;
    size_t device_peak_[kMaxDevices] = {0, 0, 0};
};

} // namespace sd
