// CSV files (plain, .gz, .zip): detect the layout from the first lines, then stream rows into the writer.
#include "core/error.hpp"
#include "data/byte_reader.hpp"
#include "data/csv_rows.hpp"
#include "data/sources.hpp"

#include <fmt/format.h>

namespace btcml::data {
namespace {

constexpr std::size_t kDetectLines = 5;
constexpr std::int64_t kProgressEvery = 1 << 16;

} // namespace

void read_file(const std::filesystem::path& path, SourceContext& ctx) {
    auto reader = open_byte_reader(path);
    if (reader->file_size() == 0) throw InvalidInput(fmt::format("{}: the file is empty", path.string()));
    LineReader lines(*reader);

    std::vector<std::string> head;
    std::string_view line;
    while (head.size() < kDetectLines && lines.next(line)) head.emplace_back(line);
    Layout layout;
    try {
        layout = detect_layout(head, ctx.options.format, ctx.options.columns);
    } catch (const Error& e) {
        throw Error(e.kind(), fmt::format("{}: {}", path.string(), e.what()));
    }
    ctx.format = layout.name;
    const std::string container = reader->container();
    if (container != "plain") ctx.format += " (" + container + ")";

    CsvRowParser rows(std::move(layout));
    Candidate candidate;
    std::int64_t line_number = 0;
    const auto handle = [&](std::string_view text) {
        ++line_number;
        if (!rows.parse(text, line_number, candidate)) return;
        ctx.writer.add(candidate);
        if (line_number % kProgressEvery == 0)
            ctx.progress(static_cast<std::int64_t>(reader->position()), static_cast<std::int64_t>(reader->file_size()));
    };
    for (const auto& h : head) handle(h);
    while (lines.next(line)) handle(line);
    ctx.progress(static_cast<std::int64_t>(reader->file_size()), static_cast<std::int64_t>(reader->file_size()));
}

} // namespace btcml::data
