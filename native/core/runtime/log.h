#pragma once
// One logging path for the engine and ggml. Messages at or above the threshold go to stderr;
// SDNODE_LOG=debug|info|warn|error|none sets the threshold (default: warn).
#include <cstdarg>
#include <string>

namespace sd {

enum class LogLevel { debug = 0, info = 1, warn = 2, error = 3, none = 4 };

void log_init_from_env();
void set_log_level(LogLevel level);
LogLevel log_level();
void log(LogLevel level, const char * format, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

// While one lives, ggml's warnings and errors on this thread are logged at debug level: used
// where we check ggml's verdict ourselves and report a better error (e.g. parsing a GGUF file).
// With `capture`, those warnings and errors are also appended to it, so that the caller can say
// why ggml refused (e.g. which library a backend module could not find).
class QuietGgmlLog {
public:
    explicit QuietGgmlLog(std::string * capture = nullptr);
    ~QuietGgmlLog();
    QuietGgmlLog(const QuietGgmlLog &) = delete;
    QuietGgmlLog & operator=(const QuietGgmlLog &) = delete;

private:
    std::string * previous_capture_;
};

} // namespace sd
