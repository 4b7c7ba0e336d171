#include "core/error.hpp"

namespace btcml {

int exit_code(ErrorKind kind) noexcept {
    switch (kind) {
    case ErrorKind::usage: return 2;
    case ErrorKind::invalid: return 3;
    case ErrorKind::not_found: return 4;
    case ErrorKind::conflict: return 5;
    case ErrorKind::unavailable: return 6;
    case ErrorKind::unauthorized: return 7;
    case ErrorKind::internal: return 1;
    }
    return 1;
}

int http_status(ErrorKind kind) noexcept {
    switch (kind) {
    case ErrorKind::usage: return 400;
    case ErrorKind::invalid: return 422;
    case ErrorKind::not_found: return 404;
    case ErrorKind::conflict: return 409;
    case ErrorKind::unavailable: return 503;
    case ErrorKind::unauthorized: return 401;
    case ErrorKind::internal: return 500;
    }
    return 500;
}

std::string_view to_string(ErrorKind kind) noexcept {
    switch (kind) {
    case ErrorKind::usage: return "usage";
    case ErrorKind::invalid: return "invalid input";
    case ErrorKind::not_found: return "not found";
    case ErrorKind::conflict: return "conflict";
    case ErrorKind::unavailable: return "unavailable";
    case ErrorKind::unauthorized: return "unauthorized";
    case ErrorKind::internal: return "internal error";
    }
    return "internal error";
}

} // namespace btcml
