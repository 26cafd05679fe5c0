#include "runtime/log.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "ggml.h"

namespace sd {

static std::atomic<int> g_threshold{static_cast<int>(LogLevel::warn)};

static LogLevel from_ggml(enum ggml_log_level level) {
    switch (level) {
        case GGML_LOG_LEVEL_DEBUG: return LogLevel::debug;
        case GGML_LOG_LEVEL_INFO:  return LogLevel::info;
        case GGML_LOG_LEVEL_WARN:  return LogLevel::warn;
        case GGML_LOG_LEVEL_ERROR: return LogLevel::error;
        default:                   return LogLevel::info; // GGML_LOG_LEVEL_CONT / NONE
    }
}

static thread_local int t_quiet_ggml = 0;
static thread_local std::string * t_capture = nullptr;

QuietGgmlLog::QuietGgmlLog(std::string * capture) : previous_capture_(t_capture) {
    ++t_quiet_ggml;
    if (capture != nullptr) t_capture = capture;
}

QuietGgmlLog::~QuietGgmlLog() {
    --t_quiet_ggml;
    t_capture = previous_capture_;
}

static void ggml_log_to_sd(enum ggml_log_level level, const char * text, void *) {
    if (t_capture != nullptr && (level == GGML_LOG_LEVEL_WARN || level == GGML_LOG_LEVEL_ERROR)) {
        t_capture->append(text);
    }
    LogLevel ours = t_quiet_ggml > 0 ? LogLevel::debug : from_ggml(level);
    if (static_cast<int>(ours) >= g_threshold.load()) {
        std::fputs(text, stderr);
    }
}

void log_init_from_env() {
    const char * value = std::getenv("SDNODE_LOG");
    if (value != nullptr) {
        static const char * names[] = {"debug", "info", "warn", "error", "none"};
        for (int i = 0; i < 5; ++i) {
            if (std::strcmp(value, names[i]) == 0) g_threshold = i;
        }
    }
    ggml_log_set(ggml_log_to_sd, nullptr);
}

void set_log_level(LogLevel level) { g_threshold = static_cast<int>(level); }

LogLevel log_level() { return static_cast<LogLevel>(g_threshold.load()); }

void log(LogLevel level, const char * format, ...) {
    if (static_cast<int>(level) < g_threshold.load()) return;
    std::fputs("[sdnode] ", stderr);
    va_list args;
    va_start(args, format);
    std::vfprintf(stderr, format, args);
    va_end(args);
    std::fputc('\n', stderr);
}

} // namespace sd
