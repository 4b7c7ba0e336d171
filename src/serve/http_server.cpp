#include "serve/http_server.hpp"

#include "core/error.hpp"
#include "core/log.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <thread>

namespace btcml::serve {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kHeaderLimit = 16 * 1024;

std::string_view title_of(int status) {
    switch (status) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    default: return status >= 500 ? "Internal Server Error" : "Error";
    }
}

std::string slug_of(std::string_view title) {
    std::string slug;
    for (const char c : title)
        slug += c == ' ' ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return slug;
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::string percent_decode(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '+') {
            out += ' ';
        } else if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
            out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
            i += 2;
        } else {
            out += s[i];
        }
    }
    return out;
}

/// Splits `/a/b/c` into segments; matches a pattern's `{x}` segments against any non-empty segment.
bool match(std::string_view pattern, std::string_view path, std::vector<std::string_view>& params) {
    params.clear();
    while (!pattern.empty() && !path.empty()) {
        if (pattern[0] != '/' || path[0] != '/') return false;
        pattern.remove_prefix(1);
        path.remove_prefix(1);
        const auto pe = std::min(pattern.find('/'), pattern.size());
        const auto se = std::min(path.find('/'), path.size());
        const auto p = pattern.substr(0, pe);
        const auto s = path.substr(0, se);
        if (p.starts_with('{')) {
            if (s.empty()) return false;
            params.push_back(s);
        } else if (p != s) {
            return false;
        }
        pattern.remove_prefix(pe);
        path.remove_prefix(se);
    }
    return pattern.empty() && path.empty();
}

std::string_view bearer_token(const Request& request) {
    // RFC 9110: the auth scheme is case-insensitive and separated from its token by one or more spaces.
    auto auth = request.header("Authorization");
    constexpr std::string_view scheme = "bearer";
    if (auth.size() <= scheme.size() || !beast::iequals(beast::string_view(auth.data(), scheme.size()), "bearer") ||
        auth[scheme.size()] != ' ')
        return {};
    auth.remove_prefix(scheme.size());
    auth.remove_prefix(std::min(auth.find_first_not_of(' '), auth.size()));
    return auth;
}

std::string_view bearer_or_header_key(const Request& request) {
    if (const auto key = request.header("X-API-Key"); !key.empty()) return key;
    return bearer_token(request);
}

/// The request's trace id: a W3C `traceparent` header's when the client sent a valid one (so that a caller's trace
/// continues here), else a new one.
std::string trace_id_of(const http::request_header<>& header) {
    const auto parent = header["traceparent"];
    // version "00" - 32 hex trace id - 16 hex parent id - 2 hex flags
    if (parent.size() == 55 && parent[2] == '-' && parent[35] == '-' && parent[52] == '-') {
        const std::string id(parent.data() + 3, 32);
        if (std::all_of(id.begin(), id.end(),
                        [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }) &&
            id != std::string(32, '0'))
            return id;
    }
    return log::new_trace_id();
}

/// Why a request's framing or Host header is unacceptable (RFC 9112 §3.2, §6.1), or nothing when it is fine. A
/// coding other than one final `chunked` could be read differently by a proxy in front of us (smuggling), and
/// we decode no other coding, so only `chunked` alone is accepted.
std::optional<std::string> framing_problem(const http::request_header<>& header) {
    if (const auto n = header.count(http::field::transfer_encoding); n > 0) {
        const auto value = header[http::field::transfer_encoding];
        if (n > 1 || !beast::iequals(value, "chunked"))
            return fmt::format("Transfer-Encoding '{}' is not supported: send chunked alone, or Content-Length",
                               std::string_view(value.data(), value.size()));
    }
    const auto hosts = header.count(http::field::host);
    if (hosts > 1) return std::string("a request must have one Host header, not several");
    if (hosts == 0 && header.version() >= 11) return std::string("an HTTP/1.1 request needs a Host header");
    return std::nullopt;
}

} // namespace

std::string_view Request::header(std::string_view name) const {
    const auto& fields = *static_cast<const http::fields*>(headers);
    const auto it = fields.find(beast::string_view(name.data(), name.size()));
    return it == fields.end() ? std::string_view{} : std::string_view(it->value().data(), it->value().size());
}

std::optional<std::string> Request::query_param(std::string_view name) const {
    std::string_view rest = query;
    while (!rest.empty()) {
        const auto amp = std::min(rest.find('&'), rest.size());
        const auto pair = rest.substr(0, amp);
        rest.remove_prefix(std::min(amp + 1, rest.size()));
        const auto eq = pair.find('=');
        if (percent_decode(pair.substr(0, eq)) != name) continue;
        return eq == std::string_view::npos ? std::string{} : percent_decode(pair.substr(eq + 1));
    }
    return std::nullopt;
}

Response json_response(const nlohmann::json& value, int status) {
    return {status, "application/json", value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), {}};
}

Response problem_response(int status, std::string_view detail, const nlohmann::json& errors) {
    const auto title = title_of(status);
    nlohmann::json body{
        {"type", "urn:btcml:problem:" + slug_of(title)}, {"title", title}, {"status", status}, {"detail", detail}};
    if (!errors.is_null()) body["errors"] = errors;
    auto response = json_response(body, status);
    response.content_type = "application/problem+json";
    if (status == 401) response.headers.emplace_back("WWW-Authenticate", "Bearer");
    return response;
}

Response error_response(const std::exception& e) {
    const auto* error = dynamic_cast<const Error*>(&e);
    if (error == nullptr) {
        log::error("request failed", {{"error.type", to_string(ErrorKind::internal)}, {"error.message", e.what()}});
        return problem_response(500, "internal error (see the server log)");
    }
    const int status = http_status(error->kind());
    if (status >= 500 && status != 503)
        log::error("request failed", {{"error.type", to_string(error->kind())}, {"error.message", e.what()}});
    if (const auto* field = dynamic_cast<const FieldError*>(error))
        return problem_response(status, e.what(),
                                nlohmann::json::array({{{"field", field->field()}, {"detail", e.what()}}}));
    return problem_response(status, e.what());
}

bool key_matches(std::string_view key, const std::vector<std::string>& keys) noexcept {
    // Every key is compared over the longer length and every byte, so timing says nothing about which bytes
    // matched; only the number of configured keys shows.
    unsigned matched = 0;
    for (const auto& candidate : keys) {
        const std::size_t n = std::max(key.size(), candidate.size());
        unsigned diff = key.size() == candidate.size() ? 0U : 1U;
        for (std::size_t i = 0; i < n; ++i) {
            const auto a = static_cast<unsigned char>(i < key.size() ? key[i] : 0);
            const auto b = static_cast<unsigned char>(i < candidate.size() ? candidate[i] : 0);
            diff |= a ^ b;
        }
        matched |= static_cast<unsigned>(diff == 0);
    }
    return matched != 0 && !key.empty();
}

FailureLimiter::FailureLimiter(int per_minute, std::size_t capacity)
    : capacity_tokens_(std::max(1, per_minute)), tokens_per_second_(std::max(1, per_minute) / 60.0),
      capacity_(std::max<std::size_t>(1, capacity)) {}

double FailureLimiter::tokens_at(const Bucket& bucket, Clock::time_point now) const {
    const double elapsed = std::chrono::duration<double>(now - bucket.updated).count();
    return std::min(capacity_tokens_, bucket.tokens + std::max(0.0, elapsed) * tokens_per_second_);
}

void FailureLimiter::refill(Bucket& bucket, Clock::time_point now) const {
    bucket.tokens = tokens_at(bucket, now);
    bucket.updated = now;
}

int FailureLimiter::retry_after(const std::string& client, Clock::time_point now) {
    const std::lock_guard lock(mutex_);
    const auto it = buckets_.find(client);
    if (it == buckets_.end()) return 0;
    refill(it->second, now);
    if (it->second.tokens >= 1) return 0;
    return static_cast<int>(std::ceil((1 - it->second.tokens) / tokens_per_second_));
}

void FailureLimiter::failed(const std::string& client, Clock::time_point now) {
    const std::lock_guard lock(mutex_);
    auto it = buckets_.find(client);
    if (it == buckets_.end()) {
        make_room(now);
        it = buckets_.emplace(client, Bucket{capacity_tokens_, now}).first;
    }
    refill(it->second, now);
    it->second.tokens = std::max(0.0, it->second.tokens - 1);
}

void FailureLimiter::make_room(Clock::time_point now) {
    if (buckets_.size() < capacity_) return;
    // A full bucket is the same as no entry: forget those first, then the least recently updated one.
    std::erase_if(buckets_, [&](const auto& entry) { return tokens_at(entry.second, now) >= capacity_tokens_; });
    if (buckets_.size() < capacity_) return;
    buckets_.erase(std::min_element(buckets_.begin(), buckets_.end(),
                                    [](const auto& a, const auto& b) { return a.second.updated < b.second.updated; }));
}

std::size_t FailureLimiter::size() const {
    const std::lock_guard lock(mutex_);
    return buckets_.size();
}

/// A request routed and checked on the I/O thread: either answered already, or a handler to run on the pool.
struct Prepared {
    Clock::time_point started;
    std::string trace_id;
    Request request;
    std::string_view route_name = "unmatched";
    const Route* route = nullptr; // the handler to run when there is no answer yet
    std::optional<Response> answer;
};

struct HttpServer::Impl {
    // Addresses with failed keys the limiter remembers at most (about 100 bytes each).
    static constexpr std::size_t kLimiterCapacity = 10'000;

    ServerOptions options;
    std::vector<Route> routes;
    std::function<void(const Exchange&)> observer;
    net::io_context ioc;
    // The acceptor, its back-off timer, the signals and the drain all run on this strand, so stopping never races
    // an accept.
    net::strand<net::io_context::executor_type> control{ioc.get_executor()};
    tcp::acceptor acceptor{control};
    net::steady_timer accept_timer{control};
    std::chrono::milliseconds accept_backoff{0};
    std::uint64_t accept_failures_in_a_row = 0;
    net::signal_set signals{control, SIGTERM, SIGINT};
    net::steady_timer drain_timer{control};
    // Declared after ioc: destroyed (joined) first, so that queued jobs release their sessions while ioc lives.
    net::thread_pool pool;
    FailureLimiter limiter;
    std::atomic<int> in_flight{0};
    std::atomic<bool> stopping{false};
    std::atomic<std::uint64_t> accept_errors{0}, auth_failures{0}, auth_rate_limited{0}, pool_rejected{0};
    std::atomic<std::int64_t> pool_queued{0};
    Clock::time_point drain_deadline;
    std::uint16_t bound_port = 0;

    Impl(ServerOptions o, std::vector<Route> r, std::function<void(const Exchange&)> obs)
        : options(std::move(o)), routes(std::move(r)), observer(std::move(obs)),
          pool(static_cast<std::size_t>(std::max(1, options.workers))),
          limiter(options.auth_failures_per_minute, kLimiterCapacity) {}

    void accept();
    void accept_failed(beast::error_code ec);
    void begin_stop();
    void drain();
    Prepared prepare(const http::request<http::string_body>& req, const std::string& client);
    /// Takes a place in the pool's queue; false when it is full.
    bool enqueue();
    http::response<http::string_body> finish(const http::request<http::string_body>& req, const Prepared& prepared,
                                             Response r);
};

namespace {

Response invoke(const Route& route, const Request& request, const std::string& trace_id) {
    const log::TraceScope trace(trace_id); // what the handler logs carries the request's trace id
    try {
        return route.handler(request);
    } catch (const std::exception& e) {
        return error_response(e);
    }
}

/// One connection: reads a request, answers it, and loops while the client keeps the connection alive. Everything
/// but a pooled handler runs on the connection's strand.
class Session : public std::enable_shared_from_this<Session> {
  public:
    Session(tcp::socket&& socket, HttpServer::Impl& server, std::string client)
        : stream_(std::move(socket)), deadline_(stream_.get_executor()), server_(server), client_(std::move(client)) {}

    void start() { read(); }

  private:
    // Reads and writes run under our own deadline rather than tcp_stream's, which would close the socket on expiry
    // and leave no way to answer 408. The deadline is kept lazily: a request moves it three times (idle, reading,
    // writing) and clears it once, and re-arming an asio timer each time costs a timer-queue update and a cancelled
    // completion to run on the I/O thread that also answers GET /api/v1/forecast. So moving the deadline later only
    // records it, the pending wait re-arms itself when it fires early, and only a sooner deadline restarts the wait.
    void arm(std::chrono::milliseconds timeout) {
        timed_out_ = false;
        deadline_at_ = Clock::now() + timeout;
        if (!waiting_ || deadline_at_ < deadline_.expiry()) wait_deadline();
    }

    void disarm() { deadline_at_ = Clock::time_point::max(); }

    void wait_deadline() {
        deadline_.expires_at(deadline_at_); // a pending wait completes as cancelled, with a stale generation
        waiting_ = true;
        deadline_.async_wait([self = shared_from_this(), generation = ++generation_](beast::error_code ec) {
            if (generation != self->generation_) return; // superseded by a sooner deadline
            self->waiting_ = false;
            if (ec || self->deadline_at_ == Clock::time_point::max()) return;    // cancelled, or nothing to guard now
            if (Clock::now() < self->deadline_at_) return self->wait_deadline(); // moved later meanwhile
            self->timed_out_ = true;
            beast::error_code ignored;
            self->stream_.socket().cancel(ignored);
        });
    }

    void read() {
        parser_.emplace();
        parser_->body_limit(server_.options.body_limit);
        parser_->header_limit(kHeaderLimit);
        if (buffer_.size() > 0) return read_request(); // a pipelined request has begun already
        // An idle keep-alive connection may wait long; once a request's first byte arrives, the whole request must
        // arrive within read_timeout (a header sent a byte at a time is cut off like a slow body).
        arm(server_.options.idle_timeout);
        stream_.socket().async_wait(tcp::socket::wait_read,
                                    beast::bind_front_handler(&Session::on_readable, shared_from_this()));
    }

    void on_readable(beast::error_code ec) {
        if (ec) return close(); // idle timeout, or the server stopping
        read_request();
    }

    void read_request() {
        arm(server_.options.read_timeout);
        http::async_read_header(stream_, buffer_, *parser_,
                                beast::bind_front_handler(&Session::on_header, shared_from_this()));
    }

    void on_header(beast::error_code ec, std::size_t) {
        if (ec) return on_read_error(ec);
        if (const auto problem = framing_problem(parser_->get().base())) return reply_error(400, *problem);
        http::async_read(stream_, buffer_, *parser_, beast::bind_front_handler(&Session::on_read, shared_from_this()));
    }

    void on_read_error(beast::error_code ec) {
        disarm();
        if (timed_out_) {
            // Silence on an idle connection just ends it; a request cut off half-way gets its 408.
            if (!parser_->got_some() && buffer_.size() == 0) return close();
            return reply_error(408, "the request did not arrive in time");
        }
        // A client that went away, even half-way through a request, is not answered and not counted.
        if (ec == http::error::end_of_stream || ec == http::error::partial_message ||
            ec == net::error::operation_aborted || ec == net::error::connection_reset || ec == net::error::eof)
            return close();
        if (ec == http::error::body_limit)
            return reply_error(413, fmt::format("the body exceeds the limit of {} bytes", server_.options.body_limit));
        if (ec == http::error::header_limit) return reply_error(431, "the request headers are too large");
        return reply_error(400, fmt::format("malformed HTTP request: {}", ec.message()));
    }

    // Errors found while reading leave the stream in an unknown state: answer and close.
    void reply_error(int status, std::string_view detail) {
        disarm();
        const auto started = Clock::now();
        const Response r = problem_response(status, detail);
        const auto trace_id = log::new_trace_id();
        res_ = {};
        res_.result(static_cast<unsigned>(status));
        res_.set(http::field::content_type, r.content_type);
        res_.set("X-Trace-Id", trace_id);
        res_.body() = r.body;
        res_.keep_alive(false);
        res_.prepare_payload();
        report({"", "unmatched", status, std::chrono::duration<double>(Clock::now() - started).count(),
                res_.body().size(), trace_id});
        server_.in_flight.fetch_add(1);
        write();
    }

    void on_read(beast::error_code ec, std::size_t) {
        if (ec) return on_read_error(ec);
        disarm(); // a pooled handler is not timed; the write is
        server_.in_flight.fetch_add(1);
        auto prepared = server_.prepare(parser_->get(), client_);
        if (prepared.answer || !server_.enqueue()) {
            if (!prepared.answer) {
                auto busy = problem_response(503, fmt::format("the server is busy: {} requests wait for a worker; "
                                                              "retry shortly",
                                                              server_.options.queue_limit));
                busy.headers.emplace_back("Retry-After", "1");
                prepared.answer = std::move(busy);
            }
            auto answer = std::move(*prepared.answer);
            return respond(prepared, std::move(answer));
        }
        // The request's views point into parser_, which stays put until the response is written.
        net::post(server_.pool, [self = shared_from_this(), prepared = std::move(prepared)]() mutable {
            auto answer = invoke(*prepared.route, prepared.request, prepared.trace_id);
            self->server_.pool_queued.fetch_sub(1);
            net::post(self->stream_.get_executor(),
                      [self, prepared = std::move(prepared), answer = std::move(answer)]() mutable {
                          self->respond(prepared, std::move(answer));
                      });
        });
    }

    void respond(const Prepared& prepared, Response answer) {
        res_ = server_.finish(parser_->get(), prepared, std::move(answer));
        write();
    }

    void write() {
        // On expiry the write fails and the connection is closed: right for a client that does not take its response.
        arm(server_.options.write_timeout);
        http::async_write(stream_, res_, beast::bind_front_handler(&Session::on_write, shared_from_this()));
    }

    void on_write(beast::error_code ec, std::size_t) {
        server_.in_flight.fetch_sub(1);
        if (ec || !res_.keep_alive() || server_.stopping.load()) return close();
        read();
    }

    void report(const Exchange& exchange) const {
        if (server_.observer) server_.observer(exchange);
    }

    void close() {
        // A pending wait would hold the session (and its socket) until it expired.
        disarm();
        deadline_.cancel();
        beast::error_code ignored;
        stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    }

    beast::tcp_stream stream_;
    net::steady_timer deadline_;
    Clock::time_point deadline_at_ = Clock::time_point::max(); // max: none
    bool waiting_ = false;                                     // deadline_ has a wait pending
    bool timed_out_ = false;
    std::uint64_t generation_ = 0; // of the pending wait, so that a superseded one does nothing
    HttpServer::Impl& server_;
    std::string client_; // the peer's address, for the limit on failed keys
    beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::string_body>> parser_;
    http::response<http::string_body> res_;
};

} // namespace

Prepared HttpServer::Impl::prepare(const http::request<http::string_body>& req, const std::string& client) {
    const std::string_view target(req.target().data(), req.target().size());
    const auto q = target.find('?');
    Prepared p{Clock::now(),
               trace_id_of(req.base()),
               {std::string_view(req.method_string().data(), req.method_string().size()),
                target.substr(0, q),
                q == std::string_view::npos ? std::string_view{} : target.substr(q + 1),
                std::string_view(req.body()),
                {},
                &req.base()},
               "unmatched",
               nullptr,
               std::nullopt};
    auto& request = p.request;
    std::string allowed;
    for (const auto& r : routes) {
        if (!match(r.pattern, request.path, request.params)) continue;
        if (r.method != request.method) {
            allowed += allowed.empty() ? r.method : ", " + r.method;
            continue;
        }
        p.route_name = r.pattern;
        // A presented key is checked on every route (it decides whether an anonymous budget applies), and a wrong one
        // counts toward the client's limit wherever it was tried. The alert route reads only the bearer token, which
        // is what Alertmanager sends: an X-API-Key there is no attempt at its token.
        const auto key = r.access == Access::alert ? bearer_token(request) : bearer_or_header_key(request);
        if (!key.empty()) {
            // A client that sent too many wrong keys is refused before its key is compared, so guessing stalls.
            if (const int wait = limiter.retry_after(client, p.started); wait > 0) {
                auth_rate_limited.fetch_add(1);
                p.answer = problem_response(
                    429, fmt::format("too many requests with a wrong API key from this address (at most {} a "
                                     "minute); retry after {} s",
                                     options.auth_failures_per_minute, wait));
                p.answer->headers.emplace_back("Retry-After", std::to_string(wait));
                return p;
            }
            request.authenticated =
                key_matches(key, r.access == Access::alert ? options.alert_tokens : options.api_keys);
            if (!request.authenticated) {
                auth_failures.fetch_add(1);
                limiter.failed(client, p.started);
            }
        }
        if (r.access == Access::alert && !request.authenticated) {
            p.answer = problem_response(401, options.alert_tokens.empty()
                                                 ? "this route needs the alert token, and the server has none "
                                                   "configured (start it with --alert-token or BTCML_ALERT_TOKEN)"
                                                 : "a valid alert token is required (Authorization: Bearer)");
            return p;
        }
        const bool needs_key = r.access == Access::write || (r.access == Access::read && options.require_key_for_reads);
        if (needs_key && !request.authenticated) {
            p.answer = problem_response(401, options.api_keys.empty()
                                                 ? "this route needs an API key, and the server has none "
                                                   "configured (start it with --api-key or BTCML_API_KEY)"
                                                 : "a valid API key is required (X-API-Key or Authorization: "
                                                   "Bearer)");
            return p;
        }
        if (r.work == Work::io)
            p.answer = invoke(r, request, p.trace_id);
        else
            p.route = &r;
        return p;
    }
    if (!allowed.empty()) {
        p.answer = problem_response(405, fmt::format("{} is not allowed here; use {}", request.method, allowed));
        p.answer->headers.emplace_back("Allow", allowed);
        return p;
    }
    p.answer = problem_response(404, fmt::format("no route for {}", request.path));
    return p;
}

bool HttpServer::Impl::enqueue() {
    const auto limit = static_cast<std::int64_t>(options.queue_limit) + std::max(1, options.workers);
    if (pool_queued.fetch_add(1) < limit) return true;
    pool_queued.fetch_sub(1);
    pool_rejected.fetch_add(1);
    return false;
}

http::response<http::string_body> HttpServer::Impl::finish(const http::request<http::string_body>& req,
                                                           const Prepared& prepared, Response r) {
    http::response<http::string_body> res{static_cast<http::status>(r.status), req.version()};
    res.set(http::field::server, "btcml");
    res.set("X-Trace-Id", prepared.trace_id);
    res.set(http::field::content_type, r.content_type);
    for (const auto& [name, value] : r.headers)
        res.set(name, value);
    res.body() = std::move(r.body);
    res.keep_alive(req.keep_alive() && !stopping.load());
    res.prepare_payload();
    if (observer)
        observer({prepared.request.method, prepared.route_name, r.status,
                  std::chrono::duration<double>(Clock::now() - prepared.started).count(), res.body().size(),
                  prepared.trace_id});
    return res;
}

void HttpServer::Impl::accept() {
    acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
        if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
        if (ec) return accept_failed(ec);
        if (accept_failures_in_a_row > 0)
            log::info("accepting connections again", {{"failures", accept_failures_in_a_row}});
        accept_failures_in_a_row = 0;
        accept_backoff = {};
        socket.set_option(tcp::no_delay(true), ec);
        const auto peer = socket.remote_endpoint(ec);
        std::make_shared<Session>(std::move(socket), *this, ec ? std::string("unknown") : peer.address().to_string())
            ->start();
        accept();
    });
}

void HttpServer::Impl::accept_failed(beast::error_code ec) {
    accept_errors.fetch_add(1);
    // The connection that failed stays queued (EMFILE: no descriptor for it), so an immediate retry would spin.
    // Wait, doubling from 100 ms to 1 s, while open connections are served; log once per run of failures.
    accept_backoff = std::clamp(accept_backoff * 2, std::chrono::milliseconds(100), std::chrono::milliseconds(1000));
    if (accept_failures_in_a_row++ == 0)
        log::warn("accept failed; retrying with back-off (up to 1 s) while open connections are served",
                  {{"error.message", ec.message()}});
    accept_timer.expires_after(accept_backoff);
    accept_timer.async_wait([this](beast::error_code timer_ec) {
        if (!timer_ec && !stopping.load()) accept();
    });
}

void HttpServer::Impl::begin_stop() {
    if (stopping.exchange(true)) return;
    log::info("stopping: no new connections; finishing in-flight requests", {{"in_flight", in_flight.load()}});
    beast::error_code ignored;
    acceptor.close(ignored);
    accept_timer.cancel();
    drain_deadline = Clock::now() + options.drain_timeout;
    drain();
}

void HttpServer::Impl::drain() {
    if (in_flight.load() == 0 || Clock::now() >= drain_deadline) {
        if (in_flight.load() > 0) log::warn("drain timeout: abandoning requests", {{"in_flight", in_flight.load()}});
        ioc.stop();
        return;
    }
    drain_timer.expires_after(std::chrono::milliseconds(10));
    drain_timer.async_wait([this](beast::error_code) { drain(); });
}

HttpServer::HttpServer(ServerOptions options, std::vector<Route> routes, std::function<void(const Exchange&)> observer)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(routes), std::move(observer))) {
    auto& s = *impl_;
    beast::error_code ec;
    const auto address = net::ip::make_address(s.options.host, ec);
    if (ec) throw UsageError(fmt::format("--host: '{}' is not an IP address", s.options.host));
    const tcp::endpoint endpoint{address, s.options.port};
    s.acceptor.open(endpoint.protocol());
    s.acceptor.set_option(net::socket_base::reuse_address(true));
    s.acceptor.bind(endpoint, ec);
    if (ec) throw Unavailable(fmt::format("cannot listen on {}:{}: {}", s.options.host, s.options.port, ec.message()));
    s.acceptor.listen(net::socket_base::max_listen_connections);
    s.bound_port = s.acceptor.local_endpoint().port();
}

HttpServer::~HttpServer() = default;

std::uint16_t HttpServer::port() const { return impl_->bound_port; }
int HttpServer::in_flight() const { return impl_->in_flight.load(); }
const std::vector<Route>& HttpServer::routes() const { return impl_->routes; }

ServerStats HttpServer::stats() const {
    const auto& s = *impl_;
    return {s.accept_errors.load(), s.auth_failures.load(), s.auth_rate_limited.load(), s.pool_rejected.load(),
            s.pool_queued.load()};
}

void HttpServer::stop() {
    net::post(impl_->control, [this] { impl_->begin_stop(); });
}

void HttpServer::run() {
    auto& s = *impl_;
    s.signals.async_wait([&s](beast::error_code ec, int) {
        if (!ec) s.begin_stop();
    });
    net::post(s.control, [&s] { s.accept(); });
    std::vector<std::thread> threads;
    for (int i = 1; i < std::max(1, s.options.threads); ++i)
        threads.emplace_back([&s] { s.ioc.run(); });
    s.ioc.run();
    for (auto& t : threads)
        t.join();
    // After a drain timeout handlers may still run on the pool: they use state the caller destroys next, so wait
    // for them (those not started are dropped).
    s.pool.stop();
    s.pool.join();
}

} // namespace btcml::serve
