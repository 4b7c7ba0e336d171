#pragma once
// What the report tests count in rendered HTML and SVG.
#include <cstddef>
#include <string>

namespace btcml::test_support {

/// How many times `what` occurs in `text`, without overlaps.
inline std::size_t count(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size()))
        ++n;
    return n;
}

} // namespace btcml::test_support
