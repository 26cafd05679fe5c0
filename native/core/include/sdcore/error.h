#pragma once
// Errors the engine reports to its callers. `code` is a stable, machine-readable name that the
// addon passes on as `error.code` (e.g. "ERR_MODEL_FORMAT"); `path` names the file involved, if any.
#include <stdexcept>
#include <string>

namespace sd {

class Error : public std::runtime_error {
public:
    Error(std::string code, const std::string & message, std::string path = "")
        : std::runtime_error(message), code_(std::move(code)), path_(std::move(path)) {}

    const std::string & code() const { return code_; }
    const std::string & path() const { return path_; }

private:
    std::string code_;
    std::string path_;
};

// Argument errors the caller should have caught earlier; the addon maps them to RangeError.
class RangeError : public Error {
public:
    explicit RangeError(const std::string & message) : Error("ERR_OUT_OF_RANGE", message) {}
};

} // namespace sd
