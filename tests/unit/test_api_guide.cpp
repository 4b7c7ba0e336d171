#include "serve/api_guide.hpp"
#include "serve/assets.hpp"
#include "text_count.hpp"

#include <gtest/gtest.h>

#include <stdexcept>

namespace btcml::serve {
namespace {

using test_support::count;

const nlohmann::ordered_json kSpec = nlohmann::ordered_json::parse(R"({
  "openapi": "3.1.0",
  "info": {"title": "t", "version": "1"},
  "tags": [{"name": "data", "description": "Bars in and out."}, {"name": "ops"}],
  "paths": {
    "/healthz": {"get": {"summary": "Liveness.", "tags": ["ops"], "responses": {"200": {"description": "ok"}}}},
    "/bars/{id}": {
      "post": {
        "summary": "Store bars.", "tags": ["data"],
        "security": [{"ApiKey": []}, {"Bearer": []}],
        "parameters": [
          {"name": "id", "in": "path", "required": true, "schema": {"type": "integer", "minimum": 1}, "example": 7},
          {"name": "note", "in": "query", "schema": {"type": "string", "default": "a|b"}, "example": "x y"}
        ],
        "requestBody": {"required": true, "content": {"application/json": {
          "schema": {"$ref": "#/components/schemas/BarsIn"},
          "example": {"symbol": "O'Neil", "bars": [{"close": 1.5}]}}}},
        "responses": {
          "201": {"description": "Stored.", "content": {"application/json": {"example": {"stored": 1}}}},
          "422": {"description": "Bad\nbar.", "content": {"application/problem+json": {}}}
        }
      },
      "get": {"summary": "Read.", "tags": ["data"], "security": [{}, {"ApiKey": []}],
              "responses": {"200": {"description": "The bars."}}}
    }
  },
  "components": {
    "schemas": {
      "Bar": {"type": "object", "required": ["close"],
              "properties": {"close": {"type": "number", "description": "Close price."}}},
      "BarsIn": {"allOf": [{"type": "object", "required": ["symbol"], "properties": {
                   "symbol": {"type": "string", "minLength": 1, "maxLength": 64},
                   "bars": {"type": "array", "items": {"$ref": "#/components/schemas/Bar"}}}}]}
    },
    "securitySchemes": {"ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                        "Bearer": {"type": "http", "scheme": "bearer"}}
  }
})");

TEST(ApiGuide, GroupsOperationsByTagInTheDocumentsOrder) {
    const auto guide = api_guide_markdown(kSpec, "http://127.0.0.1:8080/");
    const auto data = guide.find("## data\n\nBars in and out.");
    const auto ops = guide.find("## ops\n");
    ASSERT_NE(data, std::string::npos);
    ASSERT_NE(ops, std::string::npos);
    EXPECT_LT(data, ops);
    // Methods in a fixed order whatever the document's: GET before POST.
    EXPECT_LT(guide.find("### GET /bars/{id}"), guide.find("### POST /bars/{id}"));
    EXPECT_GT(guide.find("### GET /healthz"), ops);
    EXPECT_EQ(count(guide, "### "), 3U);
}

TEST(ApiGuide, ListsAuthParametersBodyFieldsAndResponses) {
    const auto guide = api_guide_markdown(kSpec, "http://127.0.0.1:8080");
    const auto post = guide.substr(guide.find("### POST /bars/{id}"));
    EXPECT_NE(post.find("**Auth:** `X-API-Key: …` or `Authorization: Bearer …`."), std::string::npos);
    EXPECT_NE(post.find("| `id` | path | integer, at least 1 | yes |  |"), std::string::npos);
    EXPECT_NE(post.find("| `note` | query | string, default a\\|b | no |  |"), std::string::npos);
    EXPECT_NE(post.find("**Request body** (`application/json`, required)"), std::string::npos);
    EXPECT_NE(post.find("| `symbol` | string, 1 to 64 characters | yes |  |"), std::string::npos);
    EXPECT_NE(post.find("| `bars` | array of Bar | no |  |"), std::string::npos);
    EXPECT_NE(post.find("| `bars[].close` | number | yes | Close price. |"), std::string::npos);
    EXPECT_NE(post.find("| 201 | `application/json` | Stored. |"), std::string::npos);
    EXPECT_NE(post.find("| 422 | `application/problem+json` | Bad bar. |"), std::string::npos);
    EXPECT_NE(post.find("Answer (201):\n\n```json\n{\n  \"stored\": 1\n}\n```"), std::string::npos);
    const auto get = guide.substr(guide.find("### GET /bars/{id}"), guide.find("### POST") - guide.find("### GET /bars"));
    EXPECT_NE(get.find("**Auth:** none or `X-API-Key: …`."), std::string::npos);
}

TEST(ApiGuide, TheCurlExampleIsBuiltFromTheDocumentsExamplesAndQuotedForTheShell) {
    const auto guide = api_guide_markdown(kSpec, "http://127.0.0.1:8080");
    EXPECT_NE(guide.find("```sh\ncurl -sS -X POST 'http://127.0.0.1:8080/bars/7?note=x%20y' \\\n"
                         "  -H \"X-API-Key: $BTCML_API_KEY\" \\\n"
                         "  -H 'Content-Type: application/json' \\\n"
                         "  --data-binary '{\"symbol\":\"O'\\''Neil\",\"bars\":[{\"close\":1.5}]}'\n```"),
              std::string::npos);
    // A key that is optional is left out of the example.
    EXPECT_NE(guide.find("```sh\ncurl -sS 'http://127.0.0.1:8080/bars/{id}'\n```"), std::string::npos);
}

TEST(ApiGuide, RendersTheEmbeddedDocumentAndRefusesOneWithoutPaths) {
    const auto document = asset("openapi.json");
    ASSERT_TRUE(document.has_value());
    const auto guide = api_guide_markdown(nlohmann::ordered_json::parse(*document), "http://127.0.0.1:8080");
    EXPECT_NE(guide.find("### POST /api/v1/predict"), std::string::npos);
    EXPECT_NE(guide.find("-H \"Authorization: Bearer $BTCML_ALERT_TOKEN\""), std::string::npos);
    EXPECT_THROW(api_guide_markdown(nlohmann::ordered_json::object(), "http://x"), std::invalid_argument);
}

} // namespace
} // namespace btcml::serve
