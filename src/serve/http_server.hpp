#pragma once
// The one wrapper around the HTTP library (Boost.Beast on an asio event loop). It owns sockets, parsing, limits,
// timeouts, keep-alive, routing by a table of (method, path pattern), API-key checks, the mapping of exceptions to
// problem+json replies, and graceful shutdown. Handlers see plain Request/Response values and never Beast types.
//
// Threads: a few I/O threads (--threads) parse, route, check keys and write; they never wait on anything but the
// network. A route marked Work::pool (it touches the store, the disk or a model, so it may block: SQLite waits up to
// 30 s for a write lock) runs on a separate worker pool (--workers) whose queue is bounded (--queue-limit: beyond it
// 503 with Retry-After); its response is handed back to the connection's strand to be written. A Work::io route
// runs where it was parsed, with no thread hop: only for handlers that answer from memory.
//
// Why Beast: the server must hold 256 keep-alive connections at close to nginx's request rate on one or two
// threads. cpp-httplib (the other packaged choice) parks one thread per open connection; Beast multiplexes every
// connection over a few epoll-driven threads, like nginx does.
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
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
    bool authenticated = false;           // a valid API key (alert token on Access::alert) came (set by the server)

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
    alert, // needs the alert token (Alertmanager's webhook); API keys are not accepted there
};

/// Where a route's handler runs (see the top of this file).
enum class Work {
    io,   // on the I/O thread that parsed the request: answers from memory, never blocks
    pool, // on the worker pool: may touch the store, the disk or a model
};

using Handler = std::function<Response(const Request&)>;

struct Route {
    std::string method;
    std::string pattern; // `/api/v1/models/{version}`: a `{name}` segment matches any one non-empty segment
    Access access = Access::read;
    Work work = Work::pool;
    Handler handler;
};

/// What happened to one request, for metrics and the access log.
struct Exchange {
    std::string_view method;
    std::string_view route; // the matched pattern, or `unmatched`
    int status = 0;
    double seconds = 0;
    std::size_t bytes = 0;     // response body
    std::string_view trace_id; // the request's trace.id, also sent back as X-Trace-Id
};

struct ServerOptions {
    std::string host = "127.0.0.1";
    std::uint16_t port = 8080;     // 0: any free port (see HttpServer::port())
    int threads = 2;               // I/O threads
    int workers = 8;               // threads of the pool that runs Work::pool handlers
    std::size_t queue_limit = 256; // pooled requests that may wait for a worker (more: 503)
    std::size_t body_limit = 1 << 20;
    // A request must arrive whole within this, counted from its first byte (else 408).
    std::chrono::milliseconds read_timeout{10'000};
    // A response must be taken by the client within this (else the connection is closed).
    std::chrono::milliseconds write_timeout{30'000};
    std::chrono::milliseconds idle_timeout{60'000};  // an idle keep-alive connection is closed after this
    std::chrono::milliseconds drain_timeout{30'000}; // on shutdown, how long in-flight requests may take
    std::vector<std::string> api_keys;
    std::vector<std::string> alert_tokens; // bearer tokens of the Access::alert routes (--alert-token)
    bool require_key_for_reads = false;
    int auth_failures_per_minute = 10; // wrong API keys one client address may send (burst and rate); then 429
};

/// Counters of what the server refused or survived, for /metrics.
struct ServerStats {
    std::uint64_t accept_errors = 0;     // accept() failures (EMFILE, ENFILE, …), each followed by a back-off
    std::uint64_t auth_failures = 0;     // requests with a wrong API key
    std::uint64_t auth_rate_limited = 0; // requests refused with 429 after too many wrong keys
    std::uint64_t pool_rejected = 0;     // pooled requests refused with 503 because the queue was full
    std::int64_t pool_queued = 0;        // pooled requests waiting for or running on a worker now
};

/// Failed attempts per client address as token buckets: each address may fail `per_minute` times at once, then
/// once every 60/per_minute s. The table holds at most `capacity` addresses; when it is full, addresses whose
/// bucket has refilled are forgotten first, then the least recently failed one. Thread-safe.
class FailureLimiter {
  public:
    using Clock = std::chrono::steady_clock;
    FailureLimiter(int per_minute, std::size_t capacity);

    /// Seconds until `client` may try again (0: it may now).
    [[nodiscard]] int retry_after(const std::string& client, Clock::time_point now);
    /// Spends one token of `client`'s bucket.
    void failed(const std::string& client, Clock::time_point now);
    /// Addresses tracked now.
    [[nodiscard]] std::size_t size() const;

  private:
    struct Bucket {
        double tokens = 0;
        Clock::time_point updated;
    };
    [[nodiscard]] double tokens_at(const Bucket& bucket, Clock::time_point now) const;
    void refill(Bucket& bucket, Clock::time_point now) const;
    void make_room(Clock::time_point now);

    double capacity_tokens_;
    double tokens_per_second_;
    std::size_t capacity_;
    mutable std::mutex mutex_;
    std::unordered_map<std::string, Bucket> buckets_;
};

/// Thread-safety: construct and run() on one thread; stop(), in_flight() and stats() are safe from any thread or a
/// signal-handling context of asio; handlers run concurrently on the I/O threads (Work::io) and the workers
/// (Work::pool).
class HttpServer {
  public:
    HttpServer(ServerOptions options, std::vector<Route> routes, std::function<void(const Exchange&)> observer);
    ~HttpServer();
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    /// The bound port (after construction; the real one when options.port was 0). Thread-safe.
    [[nodiscard]] std::uint16_t port() const;
    /// Serves until SIGTERM/SIGINT or stop(): then stops accepting, lets in-flight requests finish (up to the
    /// drain timeout) and returns once no handler runs any more (a pooled handler cannot be interrupted).
    void run();
    /// Begins the graceful stop. Thread-safe.
    void stop();
    /// Requests being handled or written now. Thread-safe.
    [[nodiscard]] int in_flight() const;
    /// The counters so far. Thread-safe.
    [[nodiscard]] ServerStats stats() const;
    /// The routes, as registered (for the OpenAPI check).
    [[nodiscard]] const std::vector<Route>& routes() const;

    struct Impl;

  private:
    std::unique_ptr<Impl> impl_;
};

/// True when `key` equals one of `keys`, comparing in time independent of where they differ.
bool key_matches(std::string_view key, const std::vector<std::string>& keys) noexcept;

} // namespace btcml::serve
