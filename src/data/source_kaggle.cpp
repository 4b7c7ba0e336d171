// `kaggle:OWNER/DATASET[/FILE]`: downloads a dataset (or one file of it) through Kaggle's public API and reads it
// as a file source.
#include "core/error.hpp"
#include "data/sources.hpp"
#include "net/http_client.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

namespace btcml::data {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view default_owner = "mczielinski";
constexpr std::string_view default_dataset = "bitcoin-historical-data";

struct KaggleSpec {
    std::string owner;
    std::string dataset;
    std::string file; // empty: the whole dataset (Kaggle sends a zip)

    [[nodiscard]] std::string name() const {
        return file.empty() ? fmt::format("{}/{}", owner, dataset) : fmt::format("{}/{}/{}", owner, dataset, file);
    }
};

/// `spec` is SOURCE after `kaggle:`; empty for plain `kaggle` or `kaggle:`.
KaggleSpec parse_spec(std::string_view spec) {
    if (spec.empty()) return {std::string(default_owner), std::string(default_dataset), {}};
    const auto first = spec.find('/');
    const auto second = first == std::string_view::npos ? first : spec.find('/', first + 1);
    KaggleSpec out{std::string(spec.substr(0, first)),
                   first == std::string_view::npos ? "" : std::string(spec.substr(first + 1, second - first - 1)),
                   second == std::string_view::npos ? "" : std::string(spec.substr(second + 1))};
    const bool file_ok = second == std::string_view::npos || !out.file.empty();
    if (out.owner.empty() || out.dataset.empty() || !file_ok) {
        throw UsageError(fmt::format("'kaggle:{}' is not a Kaggle dataset; write kaggle:OWNER/DATASET[/FILE], "
                                     "e.g. kaggle:{}/{}",
                                     spec, default_owner, default_dataset));
    }
    return out;
}

struct Credentials {
    std::string user;
    std::string key;
};

std::string env(Setting setting) { return env_value(setting).value_or(""); }

/// Where the Kaggle CLI keeps its token: $KAGGLE_CONFIG_DIR/kaggle.json, else ~/.kaggle/kaggle.json.
fs::path credentials_file() {
    if (const auto dir = env(Setting::kaggle_config_dir); !dir.empty()) return fs::path(dir) / "kaggle.json";
    const char* home = std::getenv("HOME");
    return fs::path(home != nullptr ? home : "") / ".kaggle" / "kaggle.json";
}

/// KAGGLE_USERNAME and KAGGLE_KEY when both are set, else the Kaggle CLI's kaggle.json.
Credentials find_credentials() {
    if (auto user = env(Setting::kaggle_username), key = env(Setting::kaggle_key); !user.empty() && !key.empty()) {
        return {std::move(user), std::move(key)};
    }
    const fs::path path = credentials_file();
    std::ifstream in(path);
    if (!in) {
        throw UsageError(
            fmt::format("Kaggle needs an API token: set KAGGLE_USERNAME and KAGGLE_KEY, or save kaggle.json "
                        "({{\"username\": …, \"key\": …}}, from kaggle.com → Settings → API) as {} (its folder is "
                        "KAGGLE_CONFIG_DIR, default ~/.kaggle)",
                        path.string()));
    }
    const auto json = nlohmann::json::parse(in, nullptr, false);
    if (!json.is_object() || !json.contains("username") || !json.contains("key") || !json["username"].is_string() ||
        !json["key"].is_string()) {
        throw UsageError(
            fmt::format("{} is not a Kaggle token: expected {{\"username\": \"…\", \"key\": \"…\"}}", path.string()));
    }
    return {json["username"].get<std::string>(), json["key"].get<std::string>()};
}

/// Downloads land in <home>/downloads, or the system's temporary folder when no home is set.
fs::path download_path(const KaggleSpec& spec, const fs::path& home) {
    const fs::path dir = home.empty() ? fs::temp_directory_path() : home / "downloads";
    fs::create_directories(dir);
    const auto nonce = std::random_device{}();
    return dir / fmt::format("kaggle-{}-{}-{}-{:08x}.part", spec.owner, spec.dataset, getpid(), nonce);
}

/// Removes the download however the ingest ends.
struct RemoveOnExit {
    fs::path path;
    ~RemoveOnExit() {
        std::error_code ignored;
        fs::remove(path, ignored);
    }
};

[[noreturn]] void throw_status(const KaggleSpec& spec, const Credentials& credentials,
                               const net::HttpResponse& response) {
    const std::string gist = net::error_gist(response.body);
    const std::string said = gist.empty() ? "" : fmt::format(": {}", gist);
    switch (response.status) {
    case 401:
    case 403:
        throw UsageError(fmt::format(
            "Kaggle rejected the credentials for user {} (HTTP {}{}); check KAGGLE_USERNAME/KAGGLE_KEY or {}{}",
            credentials.user, response.status, said, credentials_file().string(),
            response.status == 403 ? ", and that the dataset's rules are accepted on kaggle.com" : ""));
    case 404:
        throw NotFound(
            fmt::format("Kaggle has no {} {} (HTTP 404){}", spec.file.empty() ? "dataset" : "file", spec.name(), said));
    default:
        throw Unavailable(fmt::format("Kaggle answered HTTP {} from {} for {} ({} attempts){}; try again later",
                                      response.status, net::url_host(response.url), spec.name(), response.attempts,
                                      said));
    }
}

} // namespace

void read_kaggle(std::string_view spec_text, SourceContext& ctx) {
    const KaggleSpec spec = parse_spec(spec_text);
    const Credentials credentials = find_credentials();
    const std::string base = source_base_url(ctx, Setting::kaggle_url);

    std::string url = fmt::format("{}/api/v1/datasets/download/{}/{}", base, net::url_escape(spec.owner),
                                  net::url_escape(spec.dataset));
    if (!spec.file.empty()) url += "/" + net::url_escape(spec.file);

    // Kaggle answers with a redirect to signed storage; the client sends the credentials to Kaggle's host only.
    const RemoveOnExit download{download_path(spec, ctx.options.home)};
    net::HttpClient client;
    const net::HttpRequest request{.method = "GET",
                                   .url = url,
                                   .headers = {},
                                   .body = {},
                                   .auth = net::BasicAuth{credentials.user, credentials.key}};
    const auto response = client.download(request, download.path, ctx.progress);
    if (!response.ok()) throw_status(spec, credentials, response);
    read_file(download.path, ctx);
}

} // namespace btcml::data
