#pragma once
// The sources ingest() dispatches to, by the prefix of SOURCE. Each reads its records into ctx.writer.
#include "core/settings.hpp"
#include "data/ingest.hpp"

#include <filesystem>
#include <string>
#include <string_view>

namespace btcml::data {

/// A network source's API base URL: `--base-url`, else the setting's environment variable, else its default;
/// without trailing slashes.
std::string source_base_url(const SourceContext& ctx, Setting base_url_setting);

/// A CSV file, plain, `.gz` or `.zip` (told apart by their magic bytes, not the name); a FIFO or pipe too, and `-`
/// for standard input: the stream is opened and read once.
void read_file(const std::filesystem::path& path, SourceContext& ctx);
/// `synthetic[:SEED]`: a deterministic GARCH-like series, labelled synthetic.
void read_synthetic(std::string_view spec, SourceContext& ctx);
/// `kaggle:OWNER/DATASET[/FILE]`: downloads through Kaggle's API, then reads the CSV inside.
void read_kaggle(std::string_view spec, SourceContext& ctx);
/// `bitstamp:PAIR` (e.g. btcusd): Bitstamp's public OHLC endpoint.
void read_bitstamp(std::string_view spec, SourceContext& ctx);
/// `binance:SYMBOL` (e.g. BTCUSDT): Binance's public klines endpoint.
void read_binance(std::string_view spec, SourceContext& ctx);

} // namespace btcml::data
