#pragma once
#include <napi.h>

namespace sdnode {

// Tokenizer (a class over sd::ClipTokenizer) and parsePromptAttention.
void register_tokenizer_binding(Napi::Env env, Napi::Object exports);

} // namespace sdnode
