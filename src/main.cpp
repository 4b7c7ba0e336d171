// btcml: thin entry point; everything else lives in the subsystems under src/.
#include "cli/app.hpp"

#include <csignal>

int main(int argc, char** argv) {
    std::signal(SIGPIPE, SIG_IGN); // a closed pipe (a dead log reader) is a failed write to ignore, not death
    return btcml::cli::run(argc, argv);
}
