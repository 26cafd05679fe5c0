#pragma once
// Owning handles for ggml objects, so that a thrown error frees what a call allocated.
#include <memory>

#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml.h"

namespace sd {

struct GgmlContextDeleter { void operator()(ggml_context * ctx) const { ggml_free(ctx); } };
struct BackendDeleter { void operator()(ggml_backend_t backend) const { ggml_backend_free(backend); } };
struct BufferDeleter { void operator()(ggml_backend_buffer_t buffer) const { ggml_backend_buffer_free(buffer); } };
struct GallocrDeleter { void operator()(ggml_gallocr_t galloc) const { ggml_gallocr_free(galloc); } };

using GgmlContextPtr = std::unique_ptr<ggml_context, GgmlContextDeleter>;
using BackendPtr = std::unique_ptr<ggml_backend, BackendDeleter>;
using BufferPtr = std::unique_ptr<ggml_backend_buffer, BufferDeleter>;
using GallocrPtr = std::unique_ptr<ggml_gallocr, GallocrDeleter>;

} // namespace sd
