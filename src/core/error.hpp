#pragma once
// The small exception hierarchy of btcml. Every failure that reaches a user goes through one of these kinds;
// `exit_code` and `http_status` map them in one place (see error.cpp).
#include <stdexcept>
#include <string>
#include <string_view>

namespace btcml {

enum class ErrorKind {
    usage,        // bad flags or arguments
    invalid,      // bad input data (files, bodies, artifacts)
    not_found,    // a version, series or file that does not exist
    conflict,     // a state that forbids the operation
    unavailable,  // a database, server or network peer that failed
    unauthorized, // a missing or wrong API key
    internal,     // a bug
};

class Error : public std::runtime_error {
  public:
    Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
    [[nodiscard]] ErrorKind kind() const noexcept { return kind_; }

  private:
    ErrorKind kind_;
};

struct UsageError : Error {
    explicit UsageError(const std::string& m) : Error(ErrorKind::usage, m) {}
};
struct InvalidInput : Error {
    explicit InvalidInput(const std::string& m) : Error(ErrorKind::invalid, m) {}
};
struct NotFound : Error {
    explicit NotFound(const std::string& m) : Error(ErrorKind::not_found, m) {}
};
struct Conflict : Error {
    explicit Conflict(const std::string& m) : Error(ErrorKind::conflict, m) {}
};
struct Unavailable : Error {
    explicit Unavailable(const std::string& m) : Error(ErrorKind::unavailable, m) {}
};

struct Unauthorized : Error {
    explicit Unauthorized(const std::string& m) : Error(ErrorKind::unauthorized, m) {}
};

/// An error in one named field of a request (`bars[3].close`, `limit`), so that the reply can name it.
class FieldError : public Error {
  public:
    FieldError(ErrorKind kind, std::string field, const std::string& message)
        : Error(kind, message), field_(std::move(field)) {}
    [[nodiscard]] const std::string& field() const noexcept { return field_; }

  private:
    std::string field_;
};

int exit_code(ErrorKind kind) noexcept;
int http_status(ErrorKind kind) noexcept;
std::string_view to_string(ErrorKind kind) noexcept;

} // namespace btcml
