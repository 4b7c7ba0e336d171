// btcml: thin entry point; everything else lives in the subsystems under src/.
#include "cli/app.hpp"

int main(int argc, char** argv) { return btcml::cli::run(argc, argv); }
