#include "serve/http_server.hpp"

#include "core/error.hpp"
#include "core/log.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

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

std::string_view bearer_or_header_key(const Request& request) {
    if (const auto key = request.header("X-API-Key"); !key.empty()) return key;
    const auto auth = request.header("Authorization");
    constexpr std::string_view scheme = "Bearer ";
    return auth.size() > scheme.size() && auth.substr(0, scheme.size()) == scheme ? auth.substr(scheme.size())
                                                                                  : std::string_view{};
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
        log::error("request failed", {{"error.message", e.what()}});
        return problem_response(500, "internal error (see the server log)");
    }
    const int status = http_status(error->kind());
    if (status >= 500 && status != 503) log::error("request failed", {{"error.message", e.what()}});
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

struct HttpServer::Impl {
    ServerOptions options;
    std::vector<Route> routes;
    std::function<void(const Exchange&)> observer;
    net::io_context ioc;
    tcp::acceptor acceptor{ioc};
    net::signal_set signals{ioc, SIGTERM, SIGINT};
    net::steady_timer drain_timer{ioc};
    std::atomic<int> in_flight{0};
    std::atomic<bool> stopping{false};
    Clock::time_point drain_deadline;
    std::uint16_t bound_port = 0;

    Impl(ServerOptions o, std::vector<Route> r, std::function<void(const Exchange&)> obs)
        : options(std::move(o)), routes(std::move(r)), observer(std::move(obs)) {}

    void accept();
    void begin_stop();
    void drain();
    http::response<http::string_body> dispatch(const http::request<http::string_body>& req);
    Response route(Request& request, std::string_view& route_name) const;
};

namespace {

/// One connection: reads a request, answers it, and loops while the client keeps the connection alive.
class Session : public std::enable_shared_from_this<Session> {
  public:
    Session(tcp::socket&& socket, HttpServer::Impl& server)
        : stream_(std::move(socket)), deadline_(stream_.get_executor()), server_(server) {}

    void start() { read(); }

  private:
    // Reads run under our own deadline rather than tcp_stream's, which would close the socket on expiry and leave
    // no way to answer 408.
    void arm(std::chrono::milliseconds timeout) {
        timed_out_ = false;
        deadline_.expires_after(timeout);
        deadline_.async_wait([self = shared_from_this(), generation = ++generation_](beast::error_code ec) {
            if (ec || generation != self->generation_) return; // re-armed or cancelled
            self->timed_out_ = true;
            beast::error_code ignored;
            self->stream_.socket().cancel(ignored);
        });
    }

    void read() {
        parser_.emplace();
        parser_->body_limit(server_.options.body_limit);
        parser_->header_limit(kHeaderLimit);
        stream_.expires_never();
        // An idle keep-alive connection may wait long; once a request starts it must arrive within read_timeout.
        arm(buffer_.size() > 0 ? server_.options.read_timeout : server_.options.idle_timeout);
        http::async_read_header(stream_, buffer_, *parser_,
                                beast::bind_front_handler(&Session::on_header, shared_from_this()));
    }

    void on_header(beast::error_code ec, std::size_t) {
        if (ec) return on_read_error(ec);
        arm(server_.options.read_timeout);
        http::async_read(stream_, buffer_, *parser_, beast::bind_front_handler(&Session::on_read, shared_from_this()));
    }

    void on_read_error(beast::error_code ec) {
        deadline_.cancel();
        if (timed_out_) {
            // Silence on an idle connection just ends it; a request cut off half-way gets its 408.
            if (!parser_->got_some() && buffer_.size() == 0) return close();
            return reply_error(408, "the request did not arrive in time");
        }
        if (ec == http::error::end_of_stream || ec == net::error::operation_aborted ||
            ec == net::error::connection_reset || ec == net::error::eof)
            return close();
        if (ec == http::error::body_limit)
            return reply_error(413, fmt::format("the body exceeds the limit of {} bytes", server_.options.body_limit));
        if (ec == http::error::header_limit) return reply_error(431, "the request headers are too large");
        return reply_error(400, fmt::format("malformed HTTP request: {}", ec.message()));
    }

    // Errors found while reading leave the stream in an unknown state: answer and close.
    void reply_error(int status, std::string_view detail) {
        const auto started = Clock::now();
        const Response r = problem_response(status, detail);
        res_ = {};
        res_.result(static_cast<unsigned>(status));
        res_.set(http::field::content_type, r.content_type);
        res_.body() = r.body;
        res_.keep_alive(false);
        res_.prepare_payload();
        report({"", "unmatched", status, std::chrono::duration<double>(Clock::now() - started).count(),
                res_.body().size()});
        server_.in_flight.fetch_add(1);
        write();
    }

    void on_read(beast::error_code ec, std::size_t) {
        if (ec) return on_read_error(ec);
        deadline_.cancel();
        server_.in_flight.fetch_add(1);
        const auto& req = parser_->get();
        res_ = server_.dispatch(req);
        write();
    }

    void write() {
        stream_.expires_after(server_.options.read_timeout);
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
        beast::error_code ignored;
        stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    }

    beast::tcp_stream stream_;
    net::steady_timer deadline_;
    bool timed_out_ = false;
    std::uint64_t generation_ = 0; // of the armed deadline, so that a stale expiry cancels nothing
    HttpServer::Impl& server_;
    beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::string_body>> parser_;
    http::response<http::string_body> res_;
};

} // namespace

Response HttpServer::Impl::route(Request& request, std::string_view& route_name) const {
    std::string allowed;
    for (const auto& r : routes) {
        if (!match(r.pattern, request.path, request.params)) continue;
        if (r.method != request.method) {
            allowed += allowed.empty() ? r.method : ", " + r.method;
            continue;
        }
        route_name = r.pattern;
        request.authenticated = key_matches(bearer_or_header_key(request), options.api_keys);
        const bool needs_key = r.access == Access::write || (r.access == Access::read && options.require_key_for_reads);
        if (needs_key && !request.authenticated) {
            return problem_response(401, options.api_keys.empty()
                                             ? "this route needs an API key, and the server has none configured "
                                               "(start it with --api-key or BTCML_API_KEY)"
                                             : "a valid API key is required (X-API-Key or Authorization: Bearer)");
        }
        try {
            return r.handler(request);
        } catch (const std::exception& e) {
            return error_response(e);
        }
    }
    if (!allowed.empty()) {
        auto response = problem_response(405, fmt::format("{} is not allowed here; use {}", request.method, allowed));
        response.headers.emplace_back("Allow", allowed);
        return response;
    }
    return problem_response(404, fmt::format("no route for {}", request.path));
}

http::response<http::string_body> HttpServer::Impl::dispatch(const http::request<http::string_body>& req) {
    const auto started = Clock::now();
    const std::string_view target(req.target().data(), req.target().size());
    const auto q = target.find('?');
    Request request{std::string_view(req.method_string().data(), req.method_string().size()),
                    target.substr(0, q),
                    q == std::string_view::npos ? std::string_view{} : target.substr(q + 1),
                    std::string_view(req.body()),
                    {},
                    &req.base()};
    std::string_view route_name = "unmatched";
    Response r = route(request, route_name);

    http::response<http::string_body> res{static_cast<http::status>(r.status), req.version()};
    res.set(http::field::server, "btcml");
    res.set(http::field::content_type, r.content_type);
    for (const auto& [name, value] : r.headers)
        res.set(name, value);
    res.body() = std::move(r.body);
    res.keep_alive(req.keep_alive() && !stopping.load());
    res.prepare_payload();
    if (observer)
        observer({request.method, route_name, r.status, std::chrono::duration<double>(Clock::now() - started).count(),
                  res.body().size()});
    return res;
}

void HttpServer::Impl::accept() {
    acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
        if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
        if (!ec) {
            socket.set_option(tcp::no_delay(true), ec);
            std::make_shared<Session>(std::move(socket), *this)->start();
        } else {
            log::warn("accept failed", {{"error.message", ec.message()}});
        }
        accept();
    });
}

void HttpServer::Impl::begin_stop() {
    if (stopping.exchange(true)) return;
    log::info("stopping: no new connections; finishing in-flight requests", {{"in_flight", in_flight.load()}});
    beast::error_code ignored;
    acceptor.close(ignored);
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

void HttpServer::stop() {
    net::post(impl_->ioc, [this] { impl_->begin_stop(); });
}

void HttpServer::run() {
    auto& s = *impl_;
    s.signals.async_wait([&s](beast::error_code ec, int) {
        if (!ec) s.begin_stop();
    });
    s.accept();
    std::vector<std::thread> threads;
    for (int i = 1; i < std::max(1, s.options.threads); ++i)
        threads.emplace_back([&s] { s.ioc.run(); });
    s.ioc.run();
    for (auto& t : threads)
        t.join();
}

} // namespace btcml::serve
