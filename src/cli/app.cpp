#include "cli/app.hpp"

#include <CLI/CLI.hpp>

namespace btcml::cli {

int run(int argc, char** argv) {
    CLI::App app{"btcml: Bitcoin price forecasting, end to end"};
    CLI11_PARSE(app, argc, argv);
    return 0;
}

} // namespace btcml::cli
