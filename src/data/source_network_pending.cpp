// Placeholder until the network sources land (branch `net`): each says plainly that it is not built in yet.
#include "core/error.hpp"
#include "data/sources.hpp"

namespace btcml::data {
void read_kaggle(std::string_view, SourceContext&) { throw UsageError("kaggle: sources are not built into this binary yet"); }
void read_bitstamp(std::string_view, SourceContext&) { throw UsageError("bitstamp: not built into this binary yet"); }
void read_binance(std::string_view, SourceContext&) { throw UsageError("binance: not built into this binary yet"); }
} // namespace btcml::data
