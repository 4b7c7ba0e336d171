#pragma once

namespace btcml::cli {

/// Parses the command line, runs the chosen command and maps every error to an exit status.
int run(int argc, char** argv);

} // namespace btcml::cli
