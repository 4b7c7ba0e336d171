// Ingest parsing throughput: reads a CSV file through CsvFile (the reader `btcml ingest FILE` uses: chunking,
// layout detection, line and field splitting, number and time parsing into Candidates on its parsing threads, rows
// handed out in file order) without validating or storing, and prints one JSON object.
//   bench_ingest FILE [--repeat N] [--threads T]
// --threads 1 parses on the calling thread alone; T > 1 runs T parsing threads while the calling thread only hands
// the rows out in file order (about a tenth of the work of a row); without it, CsvFile's default (one per core).
#include "data/csv_file.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace {

struct Pass {
    std::int64_t rows = 0;
    std::int64_t parse_errors = 0;
    double checksum = 0; // keeps the parsed values alive, and shows that every pass parsed the same
    double seconds = 0;
};

Pass parse_file(const std::string& path, const btcml::data::CsvFileTuning& tuning) {
    const auto started = std::chrono::steady_clock::now();
    btcml::data::CsvFile file(path, "", "", tuning);
    btcml::data::Candidate candidate;
    Pass pass;
    while (file.next(candidate)) {
        ++pass.rows;
        if (candidate.parse_error != btcml::data::RejectReason::none) ++pass.parse_errors;
        pass.checksum += candidate.close + candidate.volume + static_cast<double>(candidate.time.value_or(0) % 1024);
    }
    pass.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return pass;
}

} // namespace

int main(int argc, char** argv) {
    int repeat = 3;
    btcml::data::CsvFileTuning tuning;
    for (int i = 2; i + 1 < argc; i += 2) {
        const std::string flag = argv[i];
        const int value = std::max(1, std::atoi(argv[i + 1]));
        if (flag == "--repeat")
            repeat = value;
        else if (flag == "--threads")
            tuning.threads = value == 1 ? 0U : static_cast<unsigned>(value); // 0: no parsing thread of its own
        else
            argc = 0; // unknown flag: usage below
    }
    if (argc < 2 || argc % 2 != 0) {
        fmt::print(stderr, "usage: {} FILE [--repeat N] [--threads T]\n", argv[0]);
        return 2;
    }
    const std::string path = argv[1];
    try {
        std::vector<double> seconds;
        Pass pass;
        for (int i = 0; i < repeat; ++i) {
            pass = parse_file(path, tuning);
            seconds.push_back(pass.seconds);
        }
        auto sorted = seconds;
        std::sort(sorted.begin(), sorted.end());
        const double best = sorted.front();
        const nlohmann::json out = {
            {"rows", pass.rows},
            {"threads", tuning.threads ? nlohmann::json(std::max(1U, *tuning.threads)) : nlohmann::json("default")},
            {"parse_errors", pass.parse_errors},
            {"checksum", pass.checksum},
            {"seconds", seconds},
            {"best_seconds", best},
            {"median_seconds", sorted[sorted.size() / 2]},
            {"rows_per_s", static_cast<double>(pass.rows) / best},
        };
        fmt::print("{}\n", out.dump());
    } catch (const std::exception& e) {
        fmt::print(stderr, "bench_ingest: {}\n", e.what());
        return 1;
    }
    return 0;
}
