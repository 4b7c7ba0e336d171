#include "report/pdf.hpp"

#include "core/error.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include <string>
#include <vector>

extern char** environ;

namespace btcml::report {
namespace {

// Removes the throw-away profile however printing ends.
struct TempDir {
    std::filesystem::path path;
    TempDir() {
        std::string pattern = (std::filesystem::temp_directory_path() / "btcml-chromium-XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr) throw Unavailable("cannot create a Chromium profile folder");
        path = pattern;
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path, ignored);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
};

} // namespace

void print_pdf(const std::filesystem::path& html, const std::filesystem::path& pdf, std::chrono::seconds timeout) {
    if (::access(kChromium, X_OK) != 0)
        throw Unavailable(
            fmt::format("--pdf needs Chromium at {} (scripts/install-browser.sh installs it)", kChromium));
    const TempDir profile;
    std::vector<std::string> args{kChromium,
                                  "--headless",
                                  "--no-sandbox",
                                  "--disable-gpu",
                                  "--disable-quic",
                                  "--no-first-run",
                                  "--disable-background-networking",
                                  "--disable-component-update",
                                  "--disable-sync",
                                  "--no-pdf-header-footer",
                                  "--user-data-dir=" + profile.path.string(),
                                  "--print-to-pdf=" + std::filesystem::absolute(pdf).string(),
                                  "file://" + std::filesystem::absolute(html).string()};
    std::vector<char*> argv;
    for (auto& a : args)
        argv.push_back(a.data());
    argv.push_back(nullptr);

    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawn_file_actions_t files;
    posix_spawn_file_actions_init(&files);
    // Chromium chatters on stdout and stderr; the report's own output stays clean.
    posix_spawn_file_actions_addopen(&files, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&files, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    pid_t pid = 0;
    const int spawned = posix_spawn(&pid, kChromium, &files, &attr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&files);
    posix_spawnattr_destroy(&attr);
    if (spawned != 0) throw Unavailable(fmt::format("cannot start {}: {}", kChromium, std::strerror(spawned)));

    const auto deadline = std::chrono::steady_clock::now() + timeout;
    int status = 0;
    while (::waitpid(pid, &status, WNOHANG) == 0) {
        if (std::chrono::steady_clock::now() >= deadline) {
            ::kill(-pid, SIGKILL);
            ::waitpid(pid, &status, 0);
            throw Unavailable(fmt::format("Chromium did not print the PDF within {} s", timeout.count()));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50)); // polling a child's exit; no sync to wait on
    }
    ::kill(-pid, SIGKILL); // helpers left behind by the finished browser
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !std::filesystem::exists(pdf) ||
        std::filesystem::file_size(pdf) == 0)
        throw Unavailable(fmt::format("Chromium failed to print {} (exit status {})", pdf.string(),
                                      WIFEXITED(status) ? WEXITSTATUS(status) : -1));
}

} // namespace btcml::report
