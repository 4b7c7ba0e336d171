// CSV files (plain, .gz, .zip): detect the layout from the first lines, then stream rows into the writer.
#include "core/error.hpp"
#include "data/csv_file.hpp"
#include "data/sources.hpp"

#include <algorithm>
#include <fmt/format.h>

namespace btcml::data {
namespace {

constexpr std::int64_t kProgressEvery = 1 << 16;

} // namespace

void read_file(const std::filesystem::path& path, SourceContext& ctx) {
    CsvFile file(path, ctx.options.format, ctx.options.columns);
    ctx.format = file.format();
    ctx.writer.set_time_source(file.time_source());
    Candidate candidate;
    std::int64_t rows = 0;
    while (file.next(candidate)) {
        ctx.writer.add(candidate);
        if (++rows % kProgressEvery == 0)
            ctx.progress(static_cast<std::int64_t>(file.position()), static_cast<std::int64_t>(file.file_size()));
    }
    if (ctx.writer.rows_read() == 0)
        throw InvalidInput(fmt::format("{}: the file has a header but no data rows", display_name(path)));
    const auto total = static_cast<std::int64_t>(std::max(file.file_size(), file.position()));
    ctx.progress(total, total);
}

} // namespace btcml::data
