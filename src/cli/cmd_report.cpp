// btcml report: the validation report of a model over a period (src/report/report.hpp), as HTML and optionally PDF.
#include "cli/commands.hpp"
#include "cli/forecast_common.hpp"
#include "core/error.hpp"
#include "report/pdf.hpp"
#include "report/report.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <unistd.h>

namespace btcml::cli {
namespace {

constexpr std::chrono::seconds kPdfTimeout{120};

struct ReportArgs {
    PeriodOptions period;
    std::string out; // empty: the HTML goes to stdout
    std::string pdf;
};

// Fails before the (long) evaluation when an output could not be written.
void check_writable(const std::string& file, const char* flag) {
    const auto parent = std::filesystem::absolute(file).parent_path();
    if (!std::filesystem::is_directory(parent))
        throw UsageError(fmt::format("{} {}: folder {} does not exist", flag, file, parent.string()));
    if (std::filesystem::is_directory(file)) throw UsageError(fmt::format("{} {}: is a folder", flag, file));
    if (::access(parent.c_str(), W_OK) != 0)
        throw UsageError(
            fmt::format("{} {}: cannot write in {}: {}", flag, file, parent.string(), std::strerror(errno)));
}

// Writes next to the target and renames, so that a failed write never leaves half a report in place of a good one.
void write_file(const std::filesystem::path& path, const std::string& text) {
    const auto temporary = std::filesystem::path(path.string() + ".tmp");
    {
        std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
        out << text;
        out.close();
        if (!out) throw Unavailable(fmt::format("cannot write {}: {}", temporary.string(), std::strerror(errno)));
    }
    std::filesystem::rename(temporary, path);
}

void run_report(const ReportArgs& args, Context& ctx) {
    const auto request = period_request(args.period);
    if (!args.out.empty()) check_writable(args.out, "--out");
    if (!args.pdf.empty()) check_writable(args.pdf, "--pdf");

    const auto data = report::collect(*ctx.open_store(), ctx.config.home, request);
    const std::string html = report::render_html(data);
    if (args.out.empty() && args.pdf.empty()) {
        std::cout << html;
        return;
    }
    // Chromium prints from a file: the --out file, else a temporary one beside the PDF.
    const std::filesystem::path html_path = std::filesystem::path(args.out.empty() ? args.pdf + ".html" : args.out);
    write_file(html_path, html);
    if (!args.pdf.empty()) {
        try {
            report::print_pdf(html_path, args.pdf, kPdfTimeout);
        } catch (...) {
            if (args.out.empty()) std::filesystem::remove(html_path);
            throw;
        }
        if (args.out.empty()) std::filesystem::remove(html_path);
    }
    const int version = data["evaluation"]["model_version"].get<int>();
    if (!args.out.empty()) std::cerr << fmt::format("report of model {} written to {}\n", version, args.out);
    if (!args.pdf.empty()) std::cerr << fmt::format("PDF of the report written to {}\n", args.pdf);
}

} // namespace

void setup_report(CLI::App& app, Context& ctx) {
    auto& args = ctx.keep<ReportArgs>();
    auto* cmd = app.add_subcommand("report", "Self-contained HTML validation report of a model over a period "
                                             "(optionally printed to PDF)");
    add_period_options(*cmd, args.period);
    cmd->add_option("--out", args.out, "HTML file to write (default: standard output)");
    cmd->add_option("--pdf", args.pdf, "Also print the report to this PDF file through headless Chromium");
    cmd->callback([&args, &ctx] { run_report(args, ctx); });
}

} // namespace btcml::cli
