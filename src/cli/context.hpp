#pragma once
// What every command shares: resolved configuration, output mode and access to the store.
#include "core/config.hpp"
#include "monitor/log_sink.hpp"
#include "store/store.hpp"

#include <CLI/CLI.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

namespace btcml::cli {

/// Not thread-safe: lives on the main thread for one invocation.
class Context {
  public:
    GlobalFlags flags;
    Config config;
    bool json = false; // the running command's --json
    // Ships every log event when `log_sink` is set; on destruction it sends what is still queued.
    std::unique_ptr<monitor::LogSink> log_sink;

    Context() = default;
    Context(const Context&) = delete;
    Context& operator=(const Context&) = delete;
    ~Context();

    /// Resolves the configuration and sets up logging; called once, after parsing, before any command runs.
    void resolve();
    /// Opens the configured store (applying migrations).
    [[nodiscard]] std::unique_ptr<store::Store> open_store() const;
    /// True when progress may be drawn: stderr is a terminal, output is not --json and logs are text.
    [[nodiscard]] bool interactive() const;
    /// Keeps a command's parsed arguments alive for the duration of the run.
    template <typename T> T& keep() {
        auto holder = std::make_unique<Holder<T>>();
        T& ref = holder->value;
        kept_.push_back(std::move(holder));
        return ref;
    }

  private:
    struct HolderBase {
        virtual ~HolderBase() = default;
    };
    template <typename T> struct Holder : HolderBase { T value{}; };
    std::vector<std::unique_ptr<HolderBase>> kept_;
};

/// Adds `--json` to a command.
void add_json_flag(CLI::App& command, Context& ctx);
/// Prints exactly one JSON object on stdout.
void print_json(const nlohmann::json& value);

} // namespace btcml::cli
