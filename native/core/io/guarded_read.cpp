#include "io/guarded_read.h"

#include <cstring>

#include "sdcore/error.h"

#if defined(__unix__) || defined(__APPLE__)
#include <csetjmp>
#include <mutex>
#include <signal.h>
#define SDNODE_GUARD_SIGBUS 1
#endif

namespace sd {

#if SDNODE_GUARD_SIGBUS

namespace {

// The jump target of the guarded read running on this thread, or null outside one.
thread_local sigjmp_buf * active_guard = nullptr;
struct sigaction previous_action;

void on_sigbus(int signal, siginfo_t * info, void * ucontext) {
    if (sigjmp_buf * guard = active_guard) {
        active_guard = nullptr;
        siglongjmp(*guard, 1);
    }
    // Not ours: behave as whoever was installed before us (the default action kills the process,
    // as it would have without us).
    if (previous_action.sa_flags & SA_SIGINFO) {
        if (previous_action.sa_sigaction != nullptr) return previous_action.sa_sigaction(signal, info, ucontext);
    } else if (previous_action.sa_handler != SIG_DFL && previous_action.sa_handler != SIG_IGN) {
        return previous_action.sa_handler(signal);
    }
    sigaction(SIGBUS, &previous_action, nullptr);  // returning re-runs the faulting access under it
}

void install_handler_once() {
    static std::once_flag installed;
    std::call_once(installed, [] {
        struct sigaction action;
        std::memset(&action, 0, sizeof(action));
        action.sa_sigaction = on_sigbus;
        action.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&action.sa_mask);
        sigaction(SIGBUS, &action, &previous_action);
    });
}

[[noreturn]] void truncated(const std::string & path) {
    throw Error("ERR_FILE_READ", "Cannot read " + path + ": the file was truncated while it was in use", path);
}

} // namespace

void guarded_call(void (*convert)(void * context), void * context, const std::string & path) {
    install_handler_once();
    sigjmp_buf guard;
    // sigsetjmp(…, 1) saves the signal mask: the handler runs with SIGBUS blocked, and the jump
    // back must unblock it for the next fault to be caught.
    if (sigsetjmp(guard, 1) != 0) truncated(path);
    active_guard = &guard;
    convert(context);
    active_guard = nullptr;
}

#else

void guarded_call(void (*convert)(void * context), void * context, const std::string &) { convert(context); }

#endif

void guarded_copy(void * dst, const void * mapped_src, size_t bytes, const std::string & path) {
    struct Copy {
        void * dst;
        const void * src;
        size_t bytes;
    } copy{dst, mapped_src, bytes};
    guarded_call([](void * c) {
        auto * p = static_cast<Copy *>(c);
        std::memcpy(p->dst, p->src, p->bytes);
    }, &copy, path);
}

} // namespace sd
