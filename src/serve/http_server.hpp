#pragma once
// The one wrapper around the HTTP library (Boost.Beast on an asio event loop). It owns sockets, parsing, limits,
// timeouts, keep-alive, routing by a table of (method, path pattern), API-key checks, the mapping of exceptions to
// problem+json replies, and graceful shutdown. Handlers see plain Request/Response values and never Beast types.
//
// Why Beast: the server must hold 256 keep-alive connections at close to nginx's request rate on one or two
// threads. cpp-httplib (the other packaged choice) parks one thread per open connection; Beast multiplexes every
// connection over a few epoll-driven threads, like nginx does.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace btcml::serve {

/// One parsed request; every view is valid only during the handler call.
struct Request {
    std::string_view method; // GET, POST, …
    std::string_view path;   // without the query string
    std::string_view query;  // raw, without '?'
    std::string_view body;
    std::vector<std::string_view> params; // path parameters, in the order of the pattern's {…} segments
    const void* headers = nullptr;        // the library's header block (see header())
    bool authenticated = false;           // a valid API key came with the request (set by the server)

    /// A header's value (case-insensitive name), empty when absent.
    [[nodiscard]] std::string_view header(std::string_view name) const;
    /// A query parameter, percent-decoded; nothing when absent.
    [[nodiscard]] std::optional<std::string> query_param(std::string_view name) const;
};

struct Response {
    int status = 200;
    std::string content_type = "application/json";
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
};

/// A JSON reply.
Response json_response(const nlohmann::json& value, int status = 200);
/// The one place where failures become RFC 9457 problem+json replies: `type`, `title`, `status`, `detail` and,
/// when fields are named, `errors: [{field, detail}]`.
Response problem_response(int status, std::string_view detail, const nlohmann::json& errors = nullptr);
/// Maps an exception (btcml::Error kinds through http_status(), anything else to 500) to a problem reply.
Response error_response(const std::exception& e);

/// Who may call a route.
enum class Access {
    open,  // always public (health, metrics, docs)
    read,  // public unless --require-key-for-reads
    write, // needs an API key
};

using Handler = std::function<Response(const Request&)>;

struct Route {
    std::string method;
    std::string pattern; // `/api/v1/models/{version}`: a `{name}` segment matches any one non-empty segment
    Access access = Access::read;
    Handler handler;
};

/// What happened to one request, for metrics and the access log.
struct Exchange {
    std::string_view method;
    std::string_view route; // the matched pattern, or `unmatched`
    int status = 0;
    double seconds = 0;
    std::size_t bytes = 0; // response body
};

struct ServerOptions {
    std::string host = "127.0.0.1";
    std::uint16_t port = 8080; // 0: any free port (see HttpServer::port())
    int threads = 2;
    std::size_t body_limit = 1 << 20;
    std::chrono::milliseconds read_timeout{10'000};  // a request must arrive whole within this (else 408)
    std::chrono::milliseconds idle_timeout{60'000};  // an idle keep-alive connection is closed after this
    std::chrono::milliseconds drain_timeout{30'000}; // on shutdown, how long in-flight requests may take
    std::vector<std::string> api_keys;
    bool require_key_for_reads = false;
};

/// Thread-safety: construct and run() on one thread; stop() and in_flight() are safe from any thread or a
/// signal-handling context of asio; handlers run concurrently on the server's threads.
class HttpServer {
  public:
    HttpServer(ServerOptions options, std::vector<Route> routes, std::function<void(const Exchange&)> observer);
    ~HttpServer();
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    /// The bound port (after construction; the real one when options.port was 0). Thread-safe.
    [[nodiscard]] std::uint16_t port() const;
    /// Serves until SIGTERM/SIGINT or stop(): then stops accepting, lets in-flight requests finish (up to the
    /// drain timeout) and returns.
    void run();
    /// Begins the graceful stop. Thread-safe.
    void stop();
    /// Requests being handled or written now. Thread-safe.
    [[nodiscard]] int in_flight() const;
    /// The routes, as registered (for the OpenAPI check).
    [[nodiscard]] const std::vector<Route>& routes() const;

    struct Impl;

  private:
    std::unique_ptr<Impl> impl_;
};

/// True when `key` equals one of `keys`, comparing in time independent of where they differ.
bool key_matches(std::string_view key, const std::vector<std::string>& keys) noexcept;

} // namespace btcml::serve
