#include "runtime/graph_runner.h"

#include <map>
#include <memory>
#include <mutex>

#include "runtime/backend_registry.h"
#include "sdcore/error.h"

namespace sd {

namespace {

// One lock per backend: a backend computes one graph at a time (the CPU backend keeps a single
// work buffer in its context), while runners of different networks of one model share it and
// may be called from different worker threads at once.
std::mutex & compute_lock(ggml_backend_t backend) {
    static std::mutex registry_lock;
    static std::map<ggml_backend_t, std::unique_ptr<std::mutex>> locks;
    std::lock_guard<std::mutex> guard(registry_lock);
    std::unique_ptr<std::mutex> & m = locks[backend];
    if (!m) m = std::make_unique<std::mutex>();
    return *m;
}

} // namespace

void GraphInputs::add(ggml_tensor * tensor, const void * data, size_t bytes) {
    if (bytes != ggml_nbytes(tensor)) {
        throw Error("ERR_INTERNAL", std::string("Input ") + ggml_get_name(tensor) + " has " + std::to_string(bytes) +
                                        " bytes for a tensor of " + std::to_string(ggml_nbytes(tensor)));
    }
    ggml_set_input(tensor);
    entries_.push_back({tensor, data, bytes});
}

ggml_tensor * GraphInputs::add_f32(ggml_context * ctx, const char * name, const float * data, std::vector<int64_t> ne) {
    ggml_tensor * t = ggml_new_tensor(ctx, GGML_TYPE_F32, static_cast<int>(ne.size()), ne.data());
    ggml_set_name(t, name);
    add(t, data, ggml_nbytes(t));
    return t;
}

GraphRunner::GraphRunner(ggml_backend_t backend, int threads, size_t max_nodes)
    : backend_(backend), max_nodes_(max_nodes),
      allocator_(ggml_gallocr_new(ggml_backend_get_default_buffer_type(backend))) {
    ggml_backend_dev_t device = ggml_backend_get_device(backend);
    ggml_backend_reg_t reg = device ? ggml_backend_dev_backend_reg(device) : nullptr;
    auto set_threads = reg ? reinterpret_cast<ggml_backend_set_n_threads_t>(
                                 ggml_backend_reg_get_proc_address(reg, "ggml_backend_set_n_threads"))
                           : nullptr;
    if (set_threads != nullptr) set_threads(backend, threads > 0 ? threads : default_thread_count());
}

GraphRunner::~GraphRunner() {
    if (residency_ != nullptr) residency_->detach(this);
}

void GraphRunner::bind(Residency * residency, Network network) {
    if (residency_ != nullptr) residency_->detach(this);
    residency_ = residency;
    network_ = network;
    if (residency_ != nullptr) residency_->attach(network, this);
}

void GraphRunner::release() {
    allocator_.reset(ggml_gallocr_new(ggml_backend_get_default_buffer_type(backend_)));
    compute_bytes_ = 0;
}

bool GraphRunner::release_if_idle() {
    std::unique_lock<std::mutex> idle(run_mutex_, std::try_to_lock);
    if (!idle.owns_lock()) return false;
    release();
    return true;
}

HostTensor GraphRunner::run(const BuildFn & build, int rank) {
    std::lock_guard<std::mutex> running(run_mutex_);
    std::unique_lock<std::mutex> stage;
    if (residency_ != nullptr) stage = residency_->enter(network_);
    ggml_init_params params = {ggml_tensor_overhead() * max_nodes_ + ggml_graph_overhead_custom(max_nodes_, false),
                               nullptr, /*no_alloc =*/true};
    GgmlContextPtr ctx(ggml_init(params));
    if (!ctx) throw Error("ERR_OUT_OF_MEMORY", "Could not create a graph context");
    GraphInputs inputs;
    ggml_tensor * out = build(ctx.get(), inputs);
    ggml_set_output(out);
    ggml_cgraph * graph = ggml_new_graph_custom(ctx.get(), max_nodes_, false);
    ggml_build_forward_expand(graph, out);

    if (!ggml_gallocr_alloc_graph(allocator_.get(), graph)) {
        throw Error("ERR_OUT_OF_MEMORY", "Could not allocate memory for the computation");
    }
    compute_bytes_ = ggml_gallocr_get_buffer_size(allocator_.get(), 0);
    if (residency_ != nullptr) residency_->note_allocation();
    for (const GraphInputs::Entry & e : inputs.entries_) ggml_backend_tensor_set(e.tensor, e.data, 0, e.bytes);
    std::lock_guard<std::mutex> compute_guard(compute_lock(backend_));
    if (ggml_backend_graph_compute(backend_, graph) != GGML_STATUS_SUCCESS) {
        throw Error("ERR_COMPUTE", "The backend failed to compute the graph");
    }

    if (out->type != GGML_TYPE_F32) throw Error("ERR_INTERNAL", "Graph outputs must be float32");
    std::vector<int64_t> shape;
    for (int d = rank - 1; d >= 0; --d) shape.push_back(out->ne[d]);
    HostTensor result(shape);
    ggml_backend_tensor_get(out, result.data.data(), 0, ggml_nbytes(out));
    return result;
}


} // namespace sd
