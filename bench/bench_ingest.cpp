// Ingest parsing throughput: reads a CSV file through CsvFile (the reader `btcml ingest FILE` uses: chunking,
// layout detection, line and field splitting, number and time parsing into Candidates on its parsing threads, rows
// handed out in file order) without validating or storing, and prints one JSON object.
//   bench_ingest FILE [--repeat N]
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

Pass parse_file(const std::string& path) {
    const auto started = std::chrono::steady_clock::now();
    btcml::data::CsvFile file(path, "", "");
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
    if (argc != 2 && !(argc == 4 && std::string(argv[2]) == "--repeat")) {
        fmt::print(stderr, "usage: {} FILE [--repeat N]\n", argv[0]);
        return 2;
    }
    const std::string path = argv[1];
    const int repeat = argc == 4 ? std::max(1, std::atoi(argv[3])) : 3;
    try {
        std::vector<double> seconds;
        Pass pass;
        for (int i = 0; i < repeat; ++i) {
            pass = parse_file(path);
            seconds.push_back(pass.seconds);
        }
        auto sorted = seconds;
        std::sort(sorted.begin(), sorted.end());
        const double best = sorted.front();
        const nlohmann::json out = {
            {"rows", pass.rows},
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
