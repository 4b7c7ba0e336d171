#pragma once
// The versioned schema, one list for both backends. A migration is applied once, in order, inside a transaction,
// and recorded in schema_migrations. Never edit a released migration: add a new one.
#include <span>

namespace btcml::store {

struct Migration {
    int version;
    const char* name;
    const char* sqlite_sql;
    const char* postgres_sql;
};

std::span<const Migration> migrations();

} // namespace btcml::store
