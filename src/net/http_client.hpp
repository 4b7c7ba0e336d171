#pragma once
// The one HTTP client of btcml: a thin layer over libcurl that adds what every caller needs (retries with backoff
// on transient failures, Retry-After, downloads with progress) and nothing else. Callers inspect the status.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace btcml::net {

/// Header name/value pairs in the order given; names compare case-insensitively.
using Headers = std::vector<std::pair<std::string, std::string>>;

struct BasicAuth {
    std::string user;
    std::string password;
};

struct HttpRequest {
    std::string method = "GET";
    std::string url;
    Headers headers;
    std::string body;
    std::optional<BasicAuth> auth; // sent to the URL's host only, never to a host a redirect leads to
};

struct HttpResponse {
    long status = 0;
    std::string body; // empty for a successful download (the body went to the file)
    Headers headers;  // of the final response, after redirects
    std::string url;  // the final URL, after redirects
    int attempts = 1;

    [[nodiscard]] bool ok() const noexcept { return status >= 200 && status < 300; }
    /// The first header of that name (case-insensitive), if any.
    [[nodiscard]] std::optional<std::string> header(std::string_view name) const;
};

/// Retries on 408, 429, 5xx and connection failures only. The n-th retry waits a random time in
/// [d/2, d] with d = initial_delay * multiplier^(n-1), capped at max_delay ("equal jitter"), or as long as the
/// server's Retry-After asks when that is longer. A Retry-After beyond max_retry_after is not waited for: the
/// response is returned as it is.
struct RetryPolicy {
    int max_attempts = 4;
    std::chrono::milliseconds initial_delay{500};
    std::chrono::milliseconds max_delay{8000};
    std::chrono::milliseconds max_retry_after{60000};
    double multiplier = 2.0;
    std::optional<std::uint64_t> seed; // fixes the jitter (tests); random when absent
};

struct ClientOptions {
    RetryPolicy retry;
    std::chrono::milliseconds connect_timeout{10000};
    /// Limit on one attempt of a non-download request. Downloads have none, but abort when fewer than
    /// 1 byte/s arrive for `stall_timeout`.
    std::chrono::milliseconds timeout{60000};
    std::chrono::milliseconds stall_timeout{60000};
    int max_redirects = 10;
    std::string user_agent = "btcml/" BTCML_VERSION;
};

/// Called with bytes received so far and the total (0 when the server did not say).
using DownloadProgress = std::function<void(std::int64_t done, std::int64_t total)>;

/// Thread-safety: an HttpClient owns one curl handle (reused so that paging keeps its connection alive) and is
/// NOT thread-safe; use one per thread. Creating clients on several threads at once is safe (curl_global_init
/// runs once, guarded). Errors: a connection failure that outlasts the retries throws Unavailable naming the host
/// and curl's reason; HTTP error statuses are returned, not thrown.
class HttpClient {
  public:
    explicit HttpClient(ClientOptions options = {});
    ~HttpClient();
    HttpClient(const HttpClient&) = delete;
    HttpClient& operator=(const HttpClient&) = delete;

    HttpResponse get(const std::string& url, const Headers& headers = {});
    HttpResponse post(const std::string& url, std::string body, const Headers& headers = {});
    HttpResponse put(const std::string& url, std::string body, const Headers& headers = {});
    /// Sends any request, following redirects, retrying as the policy says.
    HttpResponse send(const HttpRequest& request);
    /// Like send, but a 2xx body goes to `destination` (truncated first, rewritten on each retry); an error
    /// body stays in the response for the caller's message.
    HttpResponse download(const HttpRequest& request, const std::filesystem::path& destination,
                          const DownloadProgress& progress = {});

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// Whether a status is worth retrying: 408, 429 and 5xx.
[[nodiscard]] bool is_retryable_status(long status) noexcept;
/// Retry-After as a delay: delta-seconds or an HTTP-date (relative to `now`, unix seconds); nothing when absent
/// or malformed.
[[nodiscard]] std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value, std::int64_t now);
/// The host of a URL (`api.binance.com`), for messages; the URL itself when it does not parse.
[[nodiscard]] std::string url_host(const std::string& url);
/// Percent-encodes a path segment or query value.
[[nodiscard]] std::string url_escape(std::string_view text);
/// A one-line gist of an error body for messages: the `msg`/`message`/`reason`/`error`/`detail` field of a JSON
/// body, else the start of a plain-text body; empty for HTML or empty bodies.
[[nodiscard]] std::string error_gist(std::string_view body);

} // namespace btcml::net
