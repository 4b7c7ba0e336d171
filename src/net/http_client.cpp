#include "net/http_client.hpp"

#include "core/error.hpp"
#include "core/log.hpp"

#include <curl/curl.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <ctime>
#include <fstream>
#include <mutex>
#include <random>
#include <thread>

namespace btcml::net {
namespace {

void global_init() {
    // curl_global_init is not thread-safe and must run before any other curl call; it is never undone because
    // clients may live until exit.
    static std::once_flag once;
    std::call_once(once, [] {
        if (const CURLcode code = curl_global_init(CURL_GLOBAL_DEFAULT); code != CURLE_OK) {
            throw Error(ErrorKind::internal, fmt::format("curl_global_init failed: {}", curl_easy_strerror(code)));
        }
    });
}

bool iequals(std::string_view a, std::string_view b) {
    return std::ranges::equal(a, b, [](char x, char y) {
        return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
    });
}

std::string_view trim(std::string_view text) {
    const auto first = text.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos) return {};
    return text.substr(first, text.find_last_not_of(" \t\r\n") - first + 1);
}

bool is_retryable_curl_error(CURLcode code) {
    switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM: return true;
    default: return false;
    }
}

/// What one attempt collects; the curl callbacks write into it.
struct Transfer {
    CURL* handle = nullptr;
    HttpResponse response;
    std::ofstream* file = nullptr; // set for downloads: a 2xx body goes here
    bool file_failed = false;
    const DownloadProgress* progress = nullptr;
};

size_t on_body(char* data, size_t size, size_t count, void* user) {
    auto& transfer = *static_cast<Transfer*>(user);
    const size_t bytes = size * count;
    long status = 0;
    curl_easy_getinfo(transfer.handle, CURLINFO_RESPONSE_CODE, &status);
    if (transfer.file != nullptr && status >= 200 && status < 300) {
        transfer.file->write(data, static_cast<std::streamsize>(bytes));
        if (!*transfer.file) {
            transfer.file_failed = true;
            return 0; // aborts the transfer with CURLE_WRITE_ERROR
        }
    } else {
        transfer.response.body.append(data, bytes);
    }
    return bytes;
}

size_t on_header(char* data, size_t size, size_t count, void* user) {
    auto& headers = static_cast<Transfer*>(user)->response.headers;
    const size_t bytes = size * count;
    const std::string_view line(data, bytes);
    if (line.starts_with("HTTP/")) {
        headers.clear(); // a new response (after a redirect or 100 Continue): keep only the final one's headers
    } else if (const auto colon = line.find(':'); colon != std::string_view::npos) {
        headers.emplace_back(std::string(trim(line.substr(0, colon))), std::string(trim(line.substr(colon + 1))));
    }
    return bytes;
}

int on_progress(void* user, curl_off_t total, curl_off_t done, curl_off_t, curl_off_t) {
    const auto& transfer = *static_cast<Transfer*>(user);
    if (transfer.progress != nullptr && *transfer.progress && done > 0) (*transfer.progress)(done, total);
    return 0;
}

struct SlistDeleter {
    void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
using Slist = std::unique_ptr<curl_slist, SlistDeleter>;

} // namespace

std::optional<std::string> HttpResponse::header(std::string_view name) const {
    for (const auto& [key, value] : headers) {
        if (iequals(key, name)) return value;
    }
    return std::nullopt;
}

bool is_retryable_status(long status) noexcept { return status == 408 || status == 429 || status >= 500; }

std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value, std::int64_t now) {
    value = trim(value);
    if (value.empty()) return std::nullopt;
    if (std::ranges::all_of(value, [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; })) {
        if (value.size() > 9) return std::nullopt; // absurd; also keeps the arithmetic in range
        return std::chrono::seconds(std::stoll(std::string(value)));
    }
    const std::time_t when = curl_getdate(std::string(value).c_str(), nullptr);
    if (when < 0) return std::nullopt;
    return std::chrono::seconds(std::max<std::int64_t>(0, static_cast<std::int64_t>(when) - now));
}

std::string url_host(const std::string& url) {
    CURLU* parsed = curl_url();
    std::string host = url;
    char* part = nullptr;
    if (curl_url_set(parsed, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK &&
        curl_url_get(parsed, CURLUPART_HOST, &part, 0) == CURLUE_OK) {
        host = part;
        curl_free(part);
    }
    curl_url_cleanup(parsed);
    return host;
}

std::string url_escape(std::string_view text) {
    static constexpr std::string_view unreserved = "-._~";
    std::string out;
    for (const char c : text) {
        if (std::isalnum(static_cast<unsigned char>(c)) != 0 || unreserved.find(c) != std::string_view::npos) {
            out += c;
        } else {
            out += fmt::format("%{:02X}", static_cast<unsigned char>(c));
        }
    }
    return out;
}

std::string error_gist(std::string_view body) {
    constexpr std::size_t max_length = 200;
    const auto text = trim(body);
    if (text.empty() || text.front() == '<') return {};
    std::string gist;
    if (const auto json = nlohmann::json::parse(text, nullptr, false); json.is_object()) {
        for (const char* key : {"msg", "message", "reason", "error", "detail", "errors"}) {
            if (const auto it = json.find(key); it != json.end()) {
                gist = it->is_string() ? it->get<std::string>() : it->dump();
                break;
            }
        }
        if (gist.empty()) gist = json.dump();
    } else {
        gist = std::string(text);
    }
    std::ranges::replace_if(
        gist, [](char c) { return c == '\n' || c == '\r'; }, ' ');
    if (gist.size() > max_length) gist = gist.substr(0, max_length) + "…";
    return gist;
}

struct HttpClient::Impl {
    ClientOptions options;
    CURL* handle = nullptr;
    std::mt19937_64 random;

    explicit Impl(ClientOptions o)
        : options(std::move(o)), random(options.retry.seed.value_or(std::random_device{}())) {}

    /// One attempt. Returns curl's result; the response (status, headers, body) is in `transfer`.
    CURLcode perform(const HttpRequest& request, Transfer& transfer, std::string& error) {
        curl_easy_reset(handle); // keeps the connection cache: paging reuses one keep-alive connection
        Slist headers;
        for (const auto& [name, value] : request.headers) {
            // Appending returns the list's head, which is the same pointer once the list exists.
            curl_slist* head = curl_slist_append(headers.get(), fmt::format("{}: {}", name, value).c_str());
            if (head == nullptr) throw std::bad_alloc();
            if (!headers) headers.reset(head);
        }
        char error_buffer[CURL_ERROR_SIZE] = {};
        transfer.handle = handle;
        curl_easy_setopt(handle, CURLOPT_ERRORBUFFER, error_buffer);
        curl_easy_setopt(handle, CURLOPT_URL, request.url.c_str());
        curl_easy_setopt(handle, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(handle, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(handle, CURLOPT_NOSIGNAL, 1L); // timeouts without SIGALRM: required for threads
        curl_easy_setopt(handle, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(handle, CURLOPT_MAXREDIRS, static_cast<long>(options.max_redirects));
        // Explicit although it is curl's default: credentials go only to the host we were asked to call.
        // Kaggle redirects to a signed storage URL that must not receive them.
        curl_easy_setopt(handle, CURLOPT_UNRESTRICTED_AUTH, 0L);
        curl_easy_setopt(handle, CURLOPT_USERAGENT, options.user_agent.c_str());
        curl_easy_setopt(handle, CURLOPT_ACCEPT_ENCODING, ""); // whatever this libcurl can decode
        curl_easy_setopt(handle, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options.connect_timeout.count()));
        if (transfer.file != nullptr) {
            curl_easy_setopt(handle, CURLOPT_LOW_SPEED_LIMIT, 1L);
            curl_easy_setopt(handle, CURLOPT_LOW_SPEED_TIME,
                             static_cast<long>(std::max<std::int64_t>(1, options.stall_timeout.count() / 1000)));
            curl_easy_setopt(handle, CURLOPT_NOPROGRESS, 0L);
            curl_easy_setopt(handle, CURLOPT_XFERINFOFUNCTION, on_progress);
            curl_easy_setopt(handle, CURLOPT_XFERINFODATA, &transfer);
        } else {
            curl_easy_setopt(handle, CURLOPT_TIMEOUT_MS, static_cast<long>(options.timeout.count()));
        }
        curl_easy_setopt(handle, CURLOPT_HTTPHEADER, headers.get());
        curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(handle, CURLOPT_WRITEDATA, &transfer);
        curl_easy_setopt(handle, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(handle, CURLOPT_HEADERDATA, &transfer);
        if (request.auth) {
            curl_easy_setopt(handle, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
            curl_easy_setopt(handle, CURLOPT_USERNAME, request.auth->user.c_str());
            curl_easy_setopt(handle, CURLOPT_PASSWORD, request.auth->password.c_str());
        }
        if (request.method == "POST") {
            curl_easy_setopt(handle, CURLOPT_POST, 1L);
        } else if (request.method == "HEAD") {
            curl_easy_setopt(handle, CURLOPT_NOBODY, 1L);
        } else if (request.method != "GET") {
            curl_easy_setopt(handle, CURLOPT_CUSTOMREQUEST, request.method.c_str());
        }
        if (request.method != "GET" && request.method != "HEAD") {
            curl_easy_setopt(handle, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
            curl_easy_setopt(handle, CURLOPT_POSTFIELDS, request.body.data());
        }

        const CURLcode code = curl_easy_perform(handle);
        curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &transfer.response.status);
        char* final_url = nullptr;
        if (curl_easy_getinfo(handle, CURLINFO_EFFECTIVE_URL, &final_url) == CURLE_OK && final_url != nullptr) {
            transfer.response.url = final_url;
        }
        error = error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror(code);
        curl_easy_setopt(handle, CURLOPT_ERRORBUFFER, nullptr); // the buffer dies with this frame
        return code;
    }

    std::chrono::milliseconds backoff(int retry) {
        const auto& policy = options.retry;
        const double full = static_cast<double>(policy.initial_delay.count()) * std::pow(policy.multiplier, retry - 1);
        const double capped = std::min(full, static_cast<double>(policy.max_delay.count()));
        std::uniform_real_distribution<double> jitter(capped / 2, capped);
        return std::chrono::milliseconds(static_cast<std::int64_t>(jitter(random)));
    }

    HttpResponse run(const HttpRequest& request, const std::filesystem::path* destination,
                     const DownloadProgress* progress) {
        const int max_attempts = std::max(1, options.retry.max_attempts);
        for (int attempt = 1;; ++attempt) {
            std::ofstream file;
            Transfer transfer;
            transfer.progress = progress;
            if (destination != nullptr) {
                file.open(*destination, std::ios::binary | std::ios::trunc);
                if (!file) {
                    throw Unavailable(fmt::format("cannot write the download to {}", destination->string()));
                }
                transfer.file = &file;
            }
            std::string error;
            const CURLcode code = perform(request, transfer, error);
            if (transfer.file_failed || (file.is_open() && !file.flush())) {
                throw Unavailable(fmt::format("cannot write the download to {} (disk full?)", destination->string()));
            }
            transfer.response.attempts = attempt;
            const bool connection_failed = code != CURLE_OK;
            if (connection_failed && !is_retryable_curl_error(code)) {
                throw Unavailable(fmt::format("request to {} failed: {}", url_host(request.url), error));
            }
            if (!connection_failed && !is_retryable_status(transfer.response.status)) return transfer.response;

            auto delay = backoff(attempt);
            if (!connection_failed) {
                if (const auto asked = transfer.response.header("Retry-After")) {
                    const auto wanted = parse_retry_after(*asked, std::time(nullptr));
                    if (wanted && *wanted > options.retry.max_retry_after) return transfer.response;
                    if (wanted) delay = std::max(delay, *wanted);
                }
            }
            const std::string what =
                connection_failed ? fmt::format("\"{}\"", error) : fmt::format("HTTP {}", transfer.response.status);
            if (attempt >= max_attempts) {
                if (!connection_failed) return transfer.response;
                throw Unavailable(fmt::format("cannot reach {}: {} (after {} attempts); check the network and the URL",
                                              url_host(request.url), error, attempt));
            }
            nlohmann::json fields = {{"url.domain", url_host(request.url)},
                                     {"btcml.retry.attempt", attempt + 1},
                                     {"btcml.retry.max_attempts", max_attempts}};
            if (!connection_failed) fields["http.response.status_code"] = transfer.response.status;
            log::warn(fmt::format("{} from {}; retrying in {} ms", what, url_host(request.url), delay.count()), fields);
            std::this_thread::sleep_for(delay);
        }
    }
};

HttpClient::HttpClient(ClientOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
    global_init();
    impl_->handle = curl_easy_init();
    if (impl_->handle == nullptr) throw Error(ErrorKind::internal, "curl_easy_init failed");
}

HttpClient::~HttpClient() { curl_easy_cleanup(impl_->handle); }

HttpResponse HttpClient::get(const std::string& url, const Headers& headers) {
    return send({.method = "GET", .url = url, .headers = headers, .body = {}, .auth = {}});
}

HttpResponse HttpClient::post(const std::string& url, std::string body, const Headers& headers) {
    return send({.method = "POST", .url = url, .headers = headers, .body = std::move(body), .auth = {}});
}

HttpResponse HttpClient::put(const std::string& url, std::string body, const Headers& headers) {
    return send({.method = "PUT", .url = url, .headers = headers, .body = std::move(body), .auth = {}});
}

HttpResponse HttpClient::send(const HttpRequest& request) { return impl_->run(request, nullptr, nullptr); }

HttpResponse HttpClient::download(const HttpRequest& request, const std::filesystem::path& destination,
                                  const DownloadProgress& progress) {
    return impl_->run(request, &destination, &progress);
}

} // namespace btcml::net
