#include "runtime/residency.h"

#include <algorithm>

namespace sd {

void Residency::attach(Network network, ComputeBuffer * runner) {
    std::lock_guard<std::mutex> guard(registry_mutex_);
    runners_.emplace_back(network, runner);
}

void Residency::detach(ComputeBuffer * runner) {
    std::lock_guard<std::mutex> guard(registry_mutex_);
    runners_.erase(std::remove_if(runners_.begin(), runners_.end(),
                                  [runner](const std::pair<Network, ComputeBuffer *> & e) { return e.second == runner; }),
                   runners_.end());
}

void Residency::set_device(Network network, int slot) {
    std::lock_guard<std::mutex> guard(registry_mutex_);
    device_of_[static_cast<int>(network)] = slot;
    devices_ = std::max(devices_, slot + 1);
}

std::unique_lock<std::mutex> Residency::enter(Network network) {
    std::unique_lock<std::mutex> stage;
    if (!offload_) {
        // Weights stay, but only the entering network keeps a compute buffer: the UNet's (1.2 GB
        // at 512² for SD 1.5) and the VAE decoder's (0.9 GB) are never needed together, and the
        // price is one reallocation when a network runs again. A runner busy on another thread
        // keeps its buffer.
        std::lock_guard<std::mutex> guard(registry_mutex_);
        for (auto & [n, runner] : runners_) {
            if (n != network && release_idle_compute_[static_cast<int>(n)]) runner->release_if_idle();
        }
        return stage;
    }
    stage = std::unique_lock<std::mutex>(stage_mutex_);
    const int self = static_cast<int>(network);
    // Free before loading, so that the peak is one network's memory, never two.
    {
        std::lock_guard<std::mutex> guard(registry_mutex_);
        for (auto & [n, runner] : runners_) {
            if (n != network) runner->release();
        }
    }
    for (int i = 0; i < kNetworkCount; ++i) {
        if (i != self && weights_[i] != nullptr) weights_[i]->release();
    }
    if (weights_[self] != nullptr) weights_[self]->ensure_resident();
    note_allocation();
    return stage;
}

size_t Residency::total_locked(int slot) const {
    size_t total = 0;
    for (int i = 0; i < kNetworkCount; ++i) {
        if (weights_[i] != nullptr && (slot < 0 || device_of_[i] == slot)) total += weights_[i]->bytes();
    }
    for (const auto & [n, runner] : runners_) {
        if (slot < 0 || device_of_[static_cast<int>(n)] == slot) total += runner->compute_buffer_bytes();
    }
    return total;
}

void Residency::note_allocation() {
    std::lock_guard<std::mutex> guard(registry_mutex_);
    peak_ = std::max(peak_, total_locked());
    for (int slot = 0; slot < devices_; ++slot) device_peak_[slot] = std::max(device_peak_[slot], total_locked(slot));
}

DeviceUsage Residency::usage() const {
    std::lock_guard<std::mutex> guard(registry_mutex_);
    DeviceUsage u;
    for (int i = 0; i < kNetworkCount; ++i) u.weights[i] = weights_[i] != nullptr ? weights_[i]->bytes() : 0;
    for (const auto & [n, runner] : runners_) u.compute[static_cast<int>(n)] += runner->compute_buffer_bytes();
    u.total = total_locked();
    u.peak = std::max(peak_, u.total);
    u.devices = devices_;
    for (int i = 0; i < kNetworkCount; ++i) u.device_of[i] = device_of_[i];
    for (int slot = 0; slot < devices_; ++slot) {
        u.device_total[slot] = total_locked(slot);
        u.device_peak[slot] = std::max(device_peak_[slot], u.device_total[slot]);
    }
    return u;
}

void Residency::reset_peak() {
    std::lock_guard<std::mutex> guard(registry_mutex_);
    peak_ = total_locked();
    for (int slot = 0; slot < devices_; ++slot) device_peak_[slot] = total_locked(slot);
}

} // namespace sd
