#include "serve/api_guide.hpp"

#include <fmt/format.h>

#include <cctype>
#include <stdexcept>
#include <string_view>
#include <vector>

namespace btcml::serve {
namespace {

using Json = nlohmann::ordered_json;

constexpr const char* kMethods[] = {"get", "put", "post", "delete", "patch", "head", "options"};
// Nested objects and arrays of objects are listed this many levels down; deeper ones only by type.
constexpr int kFieldDepth = 3;

// The schema a "$ref" (a local JSON pointer such as #/components/schemas/Bar) stands for; others as they are.
const Json& resolve(const Json& spec, const Json& node) {
    const Json* at = &node;
    for (int hops = 0; at->is_object() && at->contains("$ref"); ++hops) {
        const auto ref = (*at)["$ref"].get<std::string>();
        if (hops > 16 || ref.rfind("#/", 0) != 0) throw std::invalid_argument("unresolvable $ref " + ref);
        at = &spec.at(Json::json_pointer(ref.substr(1)));
    }
    return *at;
}

// The member `key` of `object`, else an empty one: a reference, so that loops over it never outlive a temporary.
const Json& member(const Json& object, const char* key) {
    static const Json empty = Json::object();
    return object.contains(key) ? object[key] : empty;
}

std::string ref_name(const Json& node) {
    if (!node.is_object() || !node.contains("$ref")) return {};
    const auto ref = node["$ref"].get<std::string>();
    return ref.substr(ref.rfind('/') + 1);
}

// A table cell: one line, with the column separator escaped.
std::string cell(std::string_view text) {
    std::string out;
    for (char c : text) {
        if (c == '\n' || c == '\r')
            out += ' ';
        else if (c == '|')
            out += "\\|";
        else
            out += c;
    }
    return out;
}

std::string upper_case(std::string_view text) {
    std::string out;
    for (char c : text)
        out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return out;
}

std::string scalar_text(const Json& value) { return value.is_string() ? value.get<std::string>() : value.dump(); }

// "integer, 1 to 5000, default 1000": the type and the limits a client must keep to.
std::string type_text(const Json& spec, const Json& node) {
    const Json& schema = resolve(spec, node);
    std::string type;
    if (const auto name = ref_name(node); !name.empty() && schema.contains("properties")) return name;
    if (schema.contains("allOf")) return "object";
    if (!schema.contains("type")) {
        type = "any";
    } else if (schema["type"].is_array()) {
        for (const auto& t : schema["type"])
            type += (type.empty() ? "" : " or ") + t.get<std::string>();
    } else {
        type = schema["type"].get<std::string>();
    }
    if (type == "array" && schema.contains("items")) type = "array of " + type_text(spec, schema["items"]);
    if (schema.contains("format")) type += fmt::format(" ({})", schema["format"].get<std::string>());
    std::vector<std::string> limits;
    if (schema.contains("enum")) {
        std::string values;
        for (const auto& v : schema["enum"])
            values += (values.empty() ? "" : ", ") + scalar_text(v);
        limits.push_back("one of " + values);
    }
    if (schema.contains("minimum") && schema.contains("maximum"))
        limits.push_back(fmt::format("{} to {}", schema["minimum"].dump(), schema["maximum"].dump()));
    else if (schema.contains("minimum"))
        limits.push_back(fmt::format("at least {}", schema["minimum"].dump()));
    else if (schema.contains("maximum"))
        limits.push_back(fmt::format("at most {}", schema["maximum"].dump()));
    if (schema.contains("minLength") || schema.contains("maxLength"))
        limits.push_back(fmt::format("{} to {} characters", schema.value("minLength", 0),
                                     schema.contains("maxLength") ? schema["maxLength"].dump() : "any"));
    if (schema.contains("maxItems")) limits.push_back(fmt::format("at most {} items", schema["maxItems"].dump()));
    if (schema.contains("default")) limits.push_back("default " + scalar_text(schema["default"]));
    for (const auto& limit : limits)
        type += ", " + limit;
    return type;
}

struct FieldRow {
    std::string name;
    std::string type;
    bool required = false;
    std::string description;
};

// The fields of an object schema, nested ones as `a.b` and those of arrays of objects as `a[].b`.
void collect_fields(const Json& spec, const Json& node, const std::string& prefix, int depth,
                    std::vector<FieldRow>& rows) {
    const Json& schema = resolve(spec, node);
    if (schema.contains("allOf"))
        for (const auto& part : schema["allOf"])
            collect_fields(spec, part, prefix, depth, rows);
    if (!schema.contains("properties")) return;
    const Json required = schema.value("required", Json::array());
    for (const auto& [name, property] : schema["properties"].items()) {
        const Json& resolved = resolve(spec, property);
        bool is_required = false;
        for (const auto& r : required)
            is_required = is_required || r == name;
        rows.push_back({prefix + name, type_text(spec, property), is_required, resolved.value("description", "")});
        if (depth + 1 >= kFieldDepth) continue;
        if (resolved.contains("properties") || resolved.contains("allOf"))
            collect_fields(spec, property, prefix + name + ".", depth + 1, rows);
        else if (resolved.value("type", Json()) == "array" && resolved.contains("items"))
            collect_fields(spec, resolved["items"], prefix + name + "[].", depth + 1, rows);
    }
}

std::string field_table(const std::vector<FieldRow>& rows) {
    std::string out = "| Field | Type | Required | Description |\n|---|---|---|---|\n";
    for (const auto& row : rows)
        out += fmt::format("| `{}` | {} | {} | {} |\n", row.name, cell(row.type), row.required ? "yes" : "no",
                           cell(row.description));
    return out;
}

// The example of a media type object: `example`, else the first of `examples`, else the schema's own.
const Json* example_of(const Json& spec, const Json& media) {
    if (media.contains("example")) return &media["example"];
    if (media.contains("examples") && !media["examples"].empty()) {
        const Json& first = resolve(spec, media["examples"].begin().value());
        if (first.contains("value")) return &first["value"];
    }
    if (media.contains("schema")) {
        const Json& schema = resolve(spec, media["schema"]);
        if (schema.contains("example")) return &schema["example"];
    }
    return nullptr;
}

const Json* parameter_example(const Json& spec, const Json& parameter) {
    if (parameter.contains("example")) return &parameter["example"];
    if (parameter.contains("schema")) {
        const Json& schema = resolve(spec, parameter["schema"]);
        if (schema.contains("example")) return &schema["example"];
    }
    return nullptr;
}

std::string shell_quote(std::string_view text) {
    std::string out = "'";
    for (char c : text)
        out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

// Bash's $'…' quoting, for example bodies with line breaks (CSV).
std::string ansi_c_quote(std::string_view text) {
    std::string out = "$'";
    for (char c : text) {
        if (c == '\n')
            out += "\\n";
        else if (c == '\\' || c == '\'')
            out += std::string("\\") + c;
        else
            out += c;
    }
    return out + "'";
}

std::string percent_encode(std::string_view text) {
    std::string out;
    for (unsigned char c : text) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == ':')
            out += static_cast<char>(c);
        else
            out += fmt::format("%{:02X}", c);
    }
    return out;
}

// The environment variable the curl examples take a scheme's credential from: ApiKey -> BTCML_API_KEY.
std::string credential_variable(std::string_view scheme) {
    std::string out = "BTCML_";
    for (std::size_t i = 0; i < scheme.size(); ++i) {
        const auto c = static_cast<unsigned char>(scheme[i]);
        if (i > 0 && std::isupper(c)) out += '_';
        out += static_cast<char>(std::toupper(c));
    }
    return out;
}

std::string scheme_header(const Json& scheme, const std::string& value) {
    if (scheme.value("type", "") == "apiKey" && scheme.value("in", "") == "header")
        return fmt::format("{}: {}", scheme["name"].get<std::string>(), value);
    if (scheme.value("type", "") == "http" && scheme.value("scheme", "") == "bearer")
        return "Authorization: Bearer " + value;
    return {};
}

std::string auth_text(const Json& spec, const Json& security) {
    if (security.empty()) return "none.";
    std::vector<std::string> alternatives;
    std::vector<std::string> notes;
    for (const auto& requirement : security) {
        if (requirement.empty()) {
            alternatives.emplace_back("none");
            continue;
        }
        std::string all;
        for (const auto& [name, scopes] : requirement.items()) {
            const Json& scheme = spec.at("components").at("securitySchemes").at(name);
            const auto header = scheme_header(scheme, "…");
            all += (all.empty() ? "" : " and ") + (header.empty() ? name : fmt::format("`{}`", header));
            if (scheme.contains("description")) notes.push_back(scheme["description"].get<std::string>());
        }
        alternatives.push_back(all);
    }
    std::string out;
    for (std::size_t i = 0; i < alternatives.size(); ++i)
        out += (i == 0 ? "" : i + 1 == alternatives.size() ? " or " : ", ") + alternatives[i];
    out += ".";
    for (const auto& note : notes)
        out += " " + note;
    return out;
}

std::string parameters_section(const Json& spec, const Json& parameters) {
    std::string out = "**Parameters**\n\n| Name | In | Type | Required | Description |\n|---|---|---|---|---|\n";
    for (const auto& p : parameters) {
        const Json& parameter = resolve(spec, p);
        out += fmt::format("| `{}` | {} | {} | {} | {} |\n", parameter["name"].get<std::string>(),
                           parameter["in"].get<std::string>(),
                           parameter.contains("schema") ? cell(type_text(spec, parameter["schema"])) : "any",
                           parameter.value("required", false) ? "yes" : "no", cell(parameter.value("description", "")));
    }
    return out + "\n";
}

std::string request_body_section(const Json& spec, const Json& body) {
    std::string out;
    for (const auto& [media_type, media] : member(body, "content").items()) {
        out +=
            fmt::format("**Request body** (`{}`{})\n\n", media_type, body.value("required", false) ? ", required" : "");
        if (body.contains("description")) out += body["description"].get<std::string>() + "\n\n";
        std::vector<FieldRow> rows;
        if (media.contains("schema")) collect_fields(spec, media["schema"], "", 0, rows);
        if (!rows.empty()) out += field_table(rows) + "\n";
    }
    return out;
}

std::string responses_section(const Json& spec, const Json& responses) {
    std::string out = "**Responses**\n\n| Status | Content | Description |\n|---|---|---|\n";
    for (const auto& [status, r] : responses.items()) {
        const Json& response = resolve(spec, r);
        std::string types;
        for (const auto& [media_type, media] : member(response, "content").items())
            types += (types.empty() ? "" : ", ") + fmt::format("`{}`", media_type);
        out += fmt::format("| {} | {} | {} |\n", status, types.empty() ? "-" : types,
                           cell(response.value("description", "")));
    }
    return out + "\n";
}

std::string curl_example(const Json& spec, const std::string& method, const std::string& path, const Json& operation,
                         const Json& security, const std::string& base_url) {
    std::string target = path;
    std::string query;
    std::vector<std::string> parts; // the request's headers and body, one continuation line each
    for (const auto& p : member(operation, "parameters")) {
        const Json& parameter = resolve(spec, p);
        const Json* example = parameter_example(spec, parameter);
        if (!example) continue;
        const auto name = parameter["name"].get<std::string>();
        const auto where = parameter["in"].get<std::string>();
        if (where == "path") {
            if (const auto at = target.find("{" + name + "}"); at != std::string::npos)
                target.replace(at, name.size() + 2, percent_encode(scalar_text(*example)));
        } else if (where == "query") {
            query += fmt::format("{}{}={}", query.empty() ? "?" : "&", name, percent_encode(scalar_text(*example)));
        } else if (where == "header") {
            parts.push_back("-H " + shell_quote(fmt::format("{}: {}", name, scalar_text(*example))));
        }
    }
    // A route that needs a credential shows the first way to send it; the others are in **Auth**.
    if (!security.empty() && !security[0].empty()) {
        const auto& name = security[0].begin().key();
        const auto header =
            scheme_header(spec.at("components").at("securitySchemes").at(name), "$" + credential_variable(name));
        if (!header.empty()) parts.push_back(fmt::format("-H \"{}\"", header));
    }
    if (operation.contains("requestBody")) {
        const Json& body = resolve(spec, operation["requestBody"]);
        for (const auto& [media_type, media] : member(body, "content").items()) {
            const Json* example = example_of(spec, media);
            if (!example) continue;
            parts.push_back("-H " + shell_quote("Content-Type: " + media_type));
            parts.push_back("--data-binary " + (example->is_string() ? ansi_c_quote(example->get<std::string>())
                                                                     : shell_quote(example->dump())));
            break;
        }
    }
    const auto base = base_url.ends_with('/') ? base_url.substr(0, base_url.size() - 1) : base_url;
    std::string out = fmt::format("```sh\ncurl -sS {}{}", method == "get" ? "" : "-X " + upper_case(method) + " ",
                                  shell_quote(base + target + query));
    for (const auto& part : parts)
        out += " \\\n  " + part;
    return out + "\n```\n\n";
}

// The first success response with a JSON example: what the call above answers.
std::string response_example(const Json& spec, const Json& responses) {
    for (const auto& [status, r] : responses.items()) {
        if (status.empty() || status[0] != '2') continue;
        const Json& response = resolve(spec, r);
        for (const auto& [media_type, media] : member(response, "content").items()) {
            const Json* example = example_of(spec, media);
            if (!example || media_type.find("json") == std::string::npos) continue;
            return fmt::format("Answer ({}):\n\n```json\n{}\n```\n\n", status, example->dump(2));
        }
    }
    return {};
}

std::string operation_section(const Json& spec, const std::string& method, const std::string& path,
                              const Json& operation, const std::string& base_url) {
    std::string out = fmt::format("### {} {}\n\n", upper_case(method), path);
    if (operation.contains("summary")) out += operation["summary"].get<std::string>() + "\n\n";
    if (operation.contains("description")) out += operation["description"].get<std::string>() + "\n\n";
    const Json& security =
        operation.contains("security") ? operation["security"] : spec.value("security", Json::array());
    out += "**Auth:** " + auth_text(spec, security) + "\n\n";
    if (operation.contains("parameters") && !operation["parameters"].empty())
        out += parameters_section(spec, operation["parameters"]);
    if (operation.contains("requestBody")) out += request_body_section(spec, resolve(spec, operation["requestBody"]));
    const Json& responses = member(operation, "responses");
    out += responses_section(spec, responses);
    out += "Example:\n\n" + curl_example(spec, method, path, operation, security, base_url);
    out += response_example(spec, responses);
    return out;
}

} // namespace

std::string api_guide_markdown(const nlohmann::ordered_json& spec, const std::string& base_url) {
    if (!spec.is_object() || !spec.contains("paths")) throw std::invalid_argument("the OpenAPI document has no paths");
    // Tags in the document's order; operations without a declared tag come last, under their own.
    std::vector<std::pair<std::string, std::string>> tags;
    for (const auto& tag : member(spec, "tags"))
        tags.emplace_back(tag["name"].get<std::string>(), tag.value("description", ""));
    const auto known = [&tags](const std::string& name) {
        for (const auto& [tag, description] : tags)
            if (tag == name) return true;
        return false;
    };
    for (const auto& [path, item] : spec["paths"].items())
        for (const auto* method : kMethods)
            if (item.contains(method)) {
                const auto tag = item[method].value("tags", Json::array({"other"}))[0].get<std::string>();
                if (!known(tag)) tags.emplace_back(tag, "");
            }
    std::string out;
    for (const auto& [tag, description] : tags) {
        std::string section;
        for (const auto& [path, item] : spec["paths"].items())
            for (const auto* method : kMethods) {
                if (!item.contains(method)) continue;
                const Json& operation = item[method];
                if (operation.value("tags", Json::array({"other"}))[0].get<std::string>() != tag) continue;
                section += operation_section(spec, method, path, operation, base_url);
            }
        if (section.empty()) continue;
        out += fmt::format("## {}\n\n", tag);
        if (!description.empty()) out += description + "\n\n";
        out += section;
    }
    return out;
}

} // namespace btcml::serve
