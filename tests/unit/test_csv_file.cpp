#include "data/csv_file.hpp"

#include <gtest/gtest.h>

#include <bit>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>
#include <vector>

namespace btcml::data {
namespace {

std::vector<Candidate> read_all(const std::string& text) {
    const auto path =
        std::filesystem::temp_directory_path() / ("btcml-csv-file-" + std::to_string(::getpid()) + ".csv");
    std::ofstream(path) << text;
    CsvFile file(path, "", "");
    std::vector<Candidate> out;
    Candidate c;
    while (file.next(c)) out.push_back(c);
    std::filesystem::remove(path);
    return out;
}

// Plain rows take a one-pass fast path; the same values padded with spaces take the general (split, trim,
// fast_float) path. Both must give identical candidates, bit for bit.
TEST(CsvFile, FastAndGeneralPathsAgree) {
    const std::vector<std::string> rows{
        "1325412060.0,30012.81,30038.20,30011.94,30036.38,3.69107276",
        "1325412120,0.1,0.3,0.1,0.2,0.30000000000000004",
        "1325412180.00,4.58,4.58,4.58,4.58,0",
        "1325412240.0,9007199254740993,9007199254740993,1,1,1",  // a mantissa over 2^53
        "1325412300.0,1e3,1000,999.9999999999999999999,1000,5",  // an exponent, over 19 digits
        "1325412360.5,1,1,1,1,1",                                // a fractional time is truncated
        "1325412420000,1,1,1,1,1",                               // milliseconds
        "2012-01-01T10:08:00Z,1,1,1,1,1",                        // ISO 8601
        "1325412540.0,1,1,1,1,",                                 // an empty volume is 0
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
        for (const char ch : row) p += ch == ',' ? std::string(" , ") : std::string(1, ch);
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
        for (const auto field : {&Candidate::open, &Candidate::high, &Candidate::low, &Candidate::close,
                                 &Candidate::volume})
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

} // namespace
} // namespace btcml::data
