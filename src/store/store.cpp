#include "store/store.hpp"

#include "core/error.hpp"
#include "store/postgres_store.hpp"
#include "store/sqlite_store.hpp"

#include <fmt/format.h>

#include <cctype>
#include <system_error>

namespace btcml::store {
namespace {

constexpr std::string_view kSqliteScheme = "sqlite:";

bool starts_with_any(std::string_view text, std::initializer_list<std::string_view> prefixes) {
    for (const auto prefix : prefixes) {
        if (text.starts_with(prefix)) return true;
    }
    return false;
}

bool is_postgres_url(std::string_view url) { return starts_with_any(url, {"postgresql://", "postgres://"}); }

// `word:` at the start, as in `mysql://…` or `http:…`: a scheme we do not serve rather than a file name.
bool has_scheme(std::string_view url) {
    const auto colon = url.find(':');
    if (colon == std::string_view::npos || colon < 2 || !std::isalpha(static_cast<unsigned char>(url[0]))) return false;
    for (const char c : url.substr(0, colon)) {
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '-' && c != '.') return false;
    }
    return true;
}

// The file of `sqlite:PATH`, `sqlite://PATH` (so `sqlite:///abs/path` works too) or a bare path.
std::string sqlite_path(std::string_view url) {
    if (url.starts_with("sqlite://")) return std::string(url.substr(9));
    if (url.starts_with(kSqliteScheme)) return std::string(url.substr(kSqliteScheme.size()));
    return std::string(url);
}

} // namespace

namespace {

std::unique_ptr<Store> open_backend(const std::string& url, const std::filesystem::path& home) {
    if (url.empty()) {
        std::error_code ec;
        std::filesystem::create_directories(home, ec);
        if (ec) throw Unavailable(fmt::format("cannot create the home directory {}: {}", home.string(), ec.message()));
        return std::make_unique<SqliteStore>((home / "btcml.db").string());
    }
    if (is_postgres_url(url)) return std::make_unique<PostgresStore>(url);
    if (url.starts_with(kSqliteScheme) || !has_scheme(url)) {
        const auto path = sqlite_path(url);
        if (path.empty()) throw UsageError("the database URL 'sqlite:' names no file: use sqlite:PATH");
        return std::make_unique<SqliteStore>(path);
    }
    throw UsageError(fmt::format("unsupported database URL '{}': use sqlite:PATH, a file path, postgresql://… or "
                                 "postgres://…",
                                 redact_url(url)));
}

} // namespace

std::unique_ptr<Store> open_store(const std::string& url, const std::filesystem::path& home) {
    auto store = open_backend(url, home);
    store->url_ = url;
    store->home_ = home;
    return store;
}

std::unique_ptr<Store> Store::open_another() const { return open_store(url_, home_); }

std::string redact_url(const std::string& url) {
    if (url.starts_with(kSqliteScheme) || (!url.empty() && !has_scheme(url))) return "sqlite:" + sqlite_path(url);
    std::string out = url;
    // The password of the userinfo: scheme://user:password@host…
    if (const auto authority = out.find("://"); authority != std::string::npos) {
        const auto start = authority + 3;
        const auto end = std::min(out.find_first_of("/?#", start), out.size());
        const auto at = out.rfind('@', end - 1);
        if (at != std::string::npos && at >= start) {
            if (const auto colon = out.find(':', start); colon < at) out.replace(colon + 1, at - colon - 1, "***");
        }
    }
    // … and a password given as a query parameter: ?password=…&…
    for (auto pos = out.find("password="); pos != std::string::npos; pos = out.find("password=", pos + 1)) {
        if (pos > 0 && out[pos - 1] != '?' && out[pos - 1] != '&') continue;
        const auto value = pos + 9;
        const auto end = std::min(out.find('&', value), out.size());
        out.replace(value, end - value, "***");
    }
    return out;
}

} // namespace btcml::store
