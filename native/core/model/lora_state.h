#pragma once
// The LoRAs applied to a loaded model's weights (sdcore/lora.h says what and how). Each network
// (text encoder, UNet) is brought to the set a call asks for when the call starts running, and
// stays there until a call asks for another: the next call with the same set costs nothing, a
// call with another set first restores the touched weights from their saved bytes.
//
// Locking: per network, a reader-writer lock. use() returns it shared, held while the caller's
// graphs run (several calls with one set may run at once); changing the set takes it exclusively,
// so no graph ever sees half-changed weights.
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "model/loaded_model.h"
#include "model/lora_file.h"
#include "runtime/ggml_handles.h"
#include "sdcore/lora.h"

namespace sd {

class LoraState final : public ModelAttachment {
public:
    explicit LoraState(const Model & model);
    ~LoraState() override;
    LoraState(const LoraState &) = delete;
    LoraState & operator=(const LoraState &) = delete;

    // The parsed files of `set`, read once and cached (by path, size and modification time).
    // Throws as prepare_loras does.
    std::vector<std::shared_ptr<const LoraFile>> files(const LoraSet & set);

    // Brings `network`'s weights to `set` (its modules of that network, with their weights), then
    // returns the network's lock held shared: keep it while the network's graphs run. Throws as
    // files() does and ERR_OUT_OF_MEMORY; after a failure the network holds its base weights.
    std::shared_lock<std::shared_mutex> use(Network network, const LoraSet & set);

    LoraStatus status() const;

private:
    // A set as it applies to one network: each file that changes it, with its weight there.
    using Key = std::vector<std::pair<std::shared_ptr<const LoraFile>, float>>;

    struct NetworkState {
        mutable std::shared_mutex mutex;
        Key applied;
        std::unordered_map<std::string, std::vector<uint8_t>> backups;  // merged weight → its original bytes
        int merged = 0, runtime = 0;
        GgmlContextPtr adapter_ctx;  // the run-time factors' tensors and their buffer
        BufferPtr adapter_buffer;
    };

    Key key_for(Network network, const LoraSet & set);
    void apply(Network network, NetworkState & state, const Key & wanted);
    void restore(Network network, NetworkState & state);

    const Model & model_;
    NetworkState networks_[2];  // text encoder, UNet (LoRAs never touch the VAE)
    mutable std::mutex cache_mutex_;
    std::list<std::pair<std::string, std::shared_ptr<const LoraFile>>> cache_;  // most recent first
};

// The model's LoRA state, made on first use.
LoraState & lora_state(const Model & model);

} // namespace sd
