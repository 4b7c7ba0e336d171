#include "data/csv_file.hpp"

#include "core/error.hpp"

#include <gtest/gtest.h>

#include <bit>
#include <chrono>
#include <cstdio>
#include <future>
#include <thread>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>
#include <vector>

namespace btcml::data {
namespace {

/// A candidate with its raw text copied, to outlive the reader.
struct Row {
    Candidate candidate;
    std::string raw;
};

std::filesystem::path temp_csv() {
    return std::filesystem::temp_directory_path() / ("btcml-csv-file-" + std::to_string(::getpid()) + ".csv");
}

std::vector<Row> read_rows(const std::filesystem::path& path, const CsvFileTuning& tuning = {}) {
    CsvFile file(path, "", "", tuning);
    std::vector<Row> out;
    Candidate c;
    while (file.next(c))
        out.push_back({c, std::string(c.raw)});
    return out;
}

std::vector<Candidate> read_all(const std::string& text) {
    const auto path = temp_csv();
    std::ofstream(path, std::ios::binary) << text;
    std::vector<Candidate> out;
    for (const auto& row : read_rows(path))
        out.push_back(row.candidate);
    std::filesystem::remove(path);
    return out;
}

void expect_same(const Row& a, const Row& b) {
    EXPECT_EQ(a.candidate.line, b.candidate.line);
    EXPECT_EQ(a.raw, b.raw);
    EXPECT_EQ(a.candidate.time, b.candidate.time);
    EXPECT_EQ(a.candidate.parse_error, b.candidate.parse_error);
    for (const auto field :
         {&Candidate::open, &Candidate::high, &Candidate::low, &Candidate::close, &Candidate::volume})
        EXPECT_EQ(std::bit_cast<std::uint64_t>(a.candidate.*field), std::bit_cast<std::uint64_t>(b.candidate.*field));
}

// Plain rows take a one-pass fast path; the same values padded with spaces take the general (split, trim,
// fast_float) path. Both must give identical candidates, bit for bit.
TEST(CsvFile, FastAndGeneralPathsAgree) {
    const std::vector<std::string> rows{
        "1325412060.0,30012.81,30038.20,30011.94,30036.38,3.69107276",
        "1325412120,0.1,0.3,0.1,0.2,0.30000000000000004",
        "1325412180.00,4.58,4.58,4.58,4.58,0",
        "1325412240.0,9007199254740993,9007199254740993,1,1,1", // a mantissa over 2^53
        "1325412300.0,1e3,1000,999.9999999999999999999,1000,5", // an exponent, over 19 digits
        "1325412360.5,1,1,1,1,1",                               // a fractional time is truncated
        "1325412420000,1,1,1,1,1",                              // milliseconds
        "2012-01-01T10:08:00Z,1,1,1,1,1",                       // ISO 8601
        "1325412540.0,1,1,1,1,",                                // an empty volume is 0
        "1325412600.0,1,1,1,1,NaN",
        "1325412660.0,1,1,x,1,1",
        "1325412720.0,1,1,1",
        "1325412780.0,12345678.9,123456789.12,1234567.891,12345678.9,1234567890123.45678", // runs of 8 digits and more
        "1325412840.00000000,87654321.87654321,99999999.99,0.00000001,87654321.8,0.000000001",
    };
    std::string plain = "Timestamp,Open,High,Low,Close,Volume\n";
    std::string padded = plain;
    for (const auto& row : rows) {
        plain += row + "\n";
        std::string p = " ";
        for (const char ch : row)
            p += ch == ',' ? std::string(" , ") : std::string(1, ch);
        padded += p + " \n";
    }
    const auto fast = read_all(plain);
    const auto general = read_all(padded);
    ASSERT_EQ(fast.size(), rows.size());
    ASSERT_EQ(general.size(), rows.size());
    for (std::size_t i = 0; i < rows.size(); ++i) {
        SCOPED_TRACE(rows[i]);
        EXPECT_EQ(fast[i].line, general[i].line);
        EXPECT_EQ(fast[i].time, general[i].time);
        EXPECT_EQ(fast[i].parse_error, general[i].parse_error);
        if (fast[i].parse_error != RejectReason::none) continue;
        for (const auto field :
             {&Candidate::open, &Candidate::high, &Candidate::low, &Candidate::close, &Candidate::volume})
            EXPECT_EQ(std::bit_cast<std::uint64_t>(fast[i].*field), std::bit_cast<std::uint64_t>(general[i].*field));
    }
    EXPECT_EQ(fast[0].time, 1325412060);
    EXPECT_EQ(fast[0].close, 30036.38);
    EXPECT_EQ(fast[1].low, 0.1);
    EXPECT_EQ(fast[5].time, 1325412360);
    EXPECT_EQ(fast[6].time, 1325412420);
    EXPECT_EQ(fast[8].volume, 0);
    EXPECT_EQ(fast[10].parse_error, RejectReason::unparsable_number);
    EXPECT_EQ(fast[11].parse_error, RejectReason::bad_field_count);
}

// The pipeline cuts the file into chunks parsed on threads: whatever the chunk size (boundaries mid-row, mid-CRLF,
// inside quotes) and thread count, the rows, their line numbers and raw text are those of one sequential pass.
TEST(CsvFile, ChunkedParsingMatchesOnePass) {
    std::string text = "Timestamp,Open,High,Low,Close,Volume\n";
    for (int i = 0; i < 400; ++i) {
        const std::string time = std::to_string(1325412060 + 60 * i);
        switch (i % 8) {
        case 0: text += time + ",30012.81,30038.20,30011.94,30036.38,3.69107276\r\n"; break;
        case 1: text += time + ",\"1,5\",2,1,2,\"7\"\n"; break; // quoted fields take the general path
        case 2: text += "\n"; break;                            // a blank line counts but gives no row
        case 3: text += time + ",1,1,x,1,1\n"; break;
        case 4: text += time + ",1,1\n"; break;
        case 5: text += " \t\r\n"; break;
        default: text += time + "," + std::to_string(i) + ".5,400,0.25," + std::to_string(i) + ",12\n"; break;
        }
    }
    text += "1325436060,1,2,0.5,1.5,9"; // the last line has no newline
    const auto path = temp_csv();
    std::ofstream(path, std::ios::binary) << text;
    const auto reference = read_rows(path, {.chunk_bytes = 1 << 20, .threads = 0});
    ASSERT_EQ(reference.size(), 400 * 6 / 8 + 1);
    EXPECT_EQ(reference.front().candidate.line, 2);
    EXPECT_EQ(reference.front().raw, "1325412060,30012.81,30038.20,30011.94,30036.38,3.69107276");
    EXPECT_EQ(reference[1].raw, "1325412120,\"1,5\",2,1,2,\"7\"");
    EXPECT_EQ(reference[2].candidate.line, 5); // after the blank line
    EXPECT_EQ(reference[2].candidate.parse_error, RejectReason::unparsable_number);
    EXPECT_EQ(reference[3].candidate.parse_error, RejectReason::bad_field_count);
    EXPECT_EQ(reference.back().candidate.line, 402);
    EXPECT_EQ(reference.back().candidate.volume, 9);
    for (const std::size_t chunk_bytes : {1, 2, 7, 61, 64, 1000, 4096})
        for (const unsigned threads : {0, 1, 2, 3}) {
            SCOPED_TRACE(::testing::Message() << "chunk " << chunk_bytes << ", threads " << threads);
            const auto rows = read_rows(path, {.chunk_bytes = chunk_bytes, .threads = threads});
            ASSERT_EQ(rows.size(), reference.size());
            for (std::size_t i = 0; i < rows.size(); ++i)
                expect_same(rows[i], reference[i]);
        }
    std::filesystem::remove(path);
}

// A line of 16 MB or more stops reading with its line number, after the rows before it.
TEST(CsvFile, OverlongLineFailsAfterTheRowsBeforeIt) {
    const auto path = temp_csv();
    {
        std::ofstream out(path, std::ios::binary);
        out << "Timestamp,Open,High,Low,Close,Volume\n";
        for (int i = 0; i < 10; ++i)
            out << 1325412060 + 60 * i << ",1,1,1,1,1\n";
        out << std::string(ChunkReader::kMaxLine, '7') << "\n1325413060,1,1,1,1,1\n";
    }
    for (const unsigned threads : {0, 2}) {
        CsvFile file(path, "", "", {.chunk_bytes = 4096, .threads = threads});
        Candidate c;
        int rows = 0;
        try {
            while (file.next(c))
                ++rows;
            ADD_FAILURE() << "no error";
        } catch (const InvalidInput& e) {
            EXPECT_STREQ(e.what(), "line 12 is longer than 16 MB: not a CSV file of bars");
        }
        EXPECT_EQ(rows, 10);
    }
    std::filesystem::remove(path);
}

// The consumer stops early (the writer threw) while the threads wait for ring slots it will never release, or for
// their turn to read: destroying the reader must stop them wherever they wait. Each destruction runs on a thread of
// its own, so that a hang fails the test instead of stalling it.
TEST(CsvFile, DestructionWhileThreadsWaitIsPrompt) {
    const auto path = temp_csv();
    {
        std::ofstream out(path, std::ios::binary);
        out << "Timestamp,Open,High,Low,Close,Volume\n";
        for (int i = 0; i < 5000; ++i)
            out << 1325412060 + 60 * i << ",1,1,1,1,1\n";
    }
    for (int run = 0; run < 200; ++run) {
        auto file = std::make_unique<CsvFile>(path, "", "",
                                              CsvFileTuning{.chunk_bytes = 64, .threads = 1 + run % 4});
        Candidate c;
        for (int i = 0; i < run % 7; ++i)
            ASSERT_TRUE(file->next(c));
        std::promise<void> destroyed;
        auto done = destroyed.get_future();
        std::thread([f = std::move(file), &destroyed]() mutable {
            f.reset();
            destroyed.set_value();
        }).detach();
        if (done.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
            FAIL() << "destroying the reader hung in run " << run; // the detached thread is leaked with it
        }
    }
    std::filesystem::remove(path);
}

// More fields than the header (decimal commas, a stray trailing comma, 10,000 fields) or than a headerless layout's
// count is bad_field_count on both paths, not a row read from its first fields. Columns the header declares are fine.
TEST(CsvFile, RowsWithMoreFieldsThanTheHeaderAreBadFieldCount) {
    std::string wide = "1325412300";
    for (int i = 0; i < 10'000; ++i)
        wide += ",1";
    const auto rows = read_all("Timestamp,Open,High,Low,Close,Volume\n"
                               "1325412060,1,5,1,5,1,5,1,5,1\n"
                               "1325412120,1,1,1,1,1,\n"
                               "1325412180, 1 , 5 , 1 , 5 , 1 , 5\n"
                               "1325412240,1,1,1,1,1\n"
                               "1325412250,\"1\",1,1,1,1,\"2,3\"\n" +
                               wide + "\n");
    ASSERT_EQ(rows.size(), 6U);
    for (const std::size_t i : {0U, 1U, 2U, 4U, 5U})
        EXPECT_EQ(rows[i].parse_error, RejectReason::bad_field_count) << i;
    EXPECT_EQ(rows[3].parse_error, RejectReason::none);
    EXPECT_EQ(rows[3].close, 1);

    const auto kraken = read_all("1381095255,122.0,122.0,122.0,122.0,0.1,1\n1381095315,1,1,1,1,1,1,1\n");
    ASSERT_EQ(kraken.size(), 2U);
    EXPECT_EQ(kraken[0].parse_error, RejectReason::none);
    EXPECT_EQ(kraken[1].parse_error, RejectReason::bad_field_count);

    const auto declared = read_all("Timestamp,Open,High,Low,Close,Volume,Trades,Note\n1325412060,1,1,1,1,1,7,x\n"
                                   "1325412120,1,1,1,1,1\n");
    ASSERT_EQ(declared.size(), 2U);
    EXPECT_EQ(declared[0].parse_error, RejectReason::none);
    EXPECT_EQ(declared[1].parse_error, RejectReason::none); // missing trailing columns that are not used
}

// Infinite and overflowing numbers are not prices: non_finite_number, on both paths. NaN stays a missing value.
TEST(CsvFile, NonFiniteNumbersAreNamed) {
    const auto rows = read_all("Timestamp,Open,High,Low,Close,Volume\n"
                               "1325412060,1e309,1e309,1,1e309,1\n"
                               "1325412120,1,inf,1,1,1\n"
                               "1325412180,1,1,1,1,-Infinity\n"
                               "1325412240,NaN,NaN,NaN,NaN,NaN\n"
                               "1325412300,1,1,1,1,1e308\n");
    ASSERT_EQ(rows.size(), 5U);
    for (const std::size_t i : {0U, 1U, 2U})
        EXPECT_EQ(rows[i].parse_error, RejectReason::non_finite_number) << i;
    EXPECT_EQ(rows[3].parse_error, RejectReason::none);
    EXPECT_EQ(check_values(rows[3]), RejectReason::missing_price);
    EXPECT_EQ(rows[4].parse_error, RejectReason::none);
}

// A date-only column completed by a time-of-day column gives full times.
TEST(CsvFile, CombinesDateAndTimeOfDayColumns) {
    const auto rows = read_all("Date,Time,Open,High,Low,Close\n2024-01-02,03:04:05,1,1,1,1\n2024-01-02,04:00,1,1,1,1\n"
                               "2024-01-02,later,1,1,1,1\n");
    ASSERT_EQ(rows.size(), 3U);
    EXPECT_EQ(rows[0].time, 1704164645);
    EXPECT_EQ(rows[1].time, 1704168000);
    EXPECT_EQ(rows[2].parse_error, RejectReason::unparsable_time);
}

} // namespace
} // namespace btcml::data
