// Embedded files with validators: the ETag is stable and content-derived, If-None-Match gets a 304 with no body, and
// a file that was not embedded is Unavailable (503).
#include "core/error.hpp"
#include "serve/api_dashboard.hpp"
#include "serve/assets.hpp"

#include <boost/beast/http/fields.hpp>
#include <gtest/gtest.h>

#include <string>

namespace btcml::serve {
namespace {

std::string header_of(const Response& r, const std::string& name) {
    for (const auto& [key, value] : r.headers)
        if (key == name) return value;
    return {};
}

TEST(ServeDashboard, EmbeddedFilesRevalidateWithTheirEtag) {
    boost::beast::http::fields fields;
    Request request;
    request.headers = &fields;
    const auto first = asset_response(request, "openapi.json", "application/json", "no-cache");
    ASSERT_EQ(first.status, 200);
    EXPECT_EQ(first.body, std::string(*asset("openapi.json")));
    const auto tag = header_of(first, "ETag");
    ASSERT_GE(tag.size(), 3u);
    EXPECT_EQ(tag.front(), '"'); // a strong validator, quoted as RFC 9110 wants
    EXPECT_EQ(header_of(first, "Cache-Control"), "no-cache");

    fields.set("If-None-Match", tag);
    const auto again = asset_response(request, "openapi.json", "application/json", "no-cache");
    EXPECT_EQ(again.status, 304);
    EXPECT_TRUE(again.body.empty());
    EXPECT_EQ(header_of(again, "ETag"), tag);

    fields.set("If-None-Match", "\"stale\"");
    EXPECT_EQ(asset_response(request, "openapi.json", "application/json", "no-cache").status, 200);
    // Different bytes, different tag.
    EXPECT_NE(header_of(asset_response(request, "docs.html", "text/html", "no-cache"), "ETag"), tag);
}

TEST(ServeDashboard, AFileNotEmbeddedIsUnavailable) {
    boost::beast::http::fields fields;
    Request request;
    request.headers = &fields;
    EXPECT_THROW((void)asset_response(request, "never-embedded.js", "text/javascript", "no-cache"), Unavailable);
}

} // namespace
} // namespace btcml::serve
