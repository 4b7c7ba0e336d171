# btcml in a container: built on Debian bookworm, run as a non-root user with only the binary and the shared
# libraries it links. No container engine runs where btcml is developed: tests/e2e/test_containers.py lints this file
# with hadolint and checks docker-compose.yml against the Compose schema; deploy/ and docs/operations.md describe the
# tested way to run the stack.
#
#   docker build -t btcml:0.1.0 .
#   docker run -p 8080:8080 -v btcml-home:/var/lib/btcml btcml:0.1.0

FROM debian:12.11-slim AS build
# The toolchain and -dev packages of scripts/install-deps.sh; apt's versions are bookworm's, fixed by the base tag.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        build-essential cmake ninja-build pkg-config ca-certificates npm \
        libcli11-dev nlohmann-json3-dev libsqlite3-dev libpq-dev libyaml-cpp-dev libspdlog-dev libfmt-dev \
        libcurl4-openssl-dev libssl-dev libarchive-dev zlib1g-dev libeigen3-dev libfast-float-dev \
        libonnx-dev libprotobuf-dev protobuf-compiler libboost-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Swagger UI first (GET /docs embeds it): its layer is reused while only the sources change.
COPY web/package.json web/package-lock.json web/
WORKDIR /src/web
RUN npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
WORKDIR /src
COPY CMakeLists.txt ./
COPY src src
COPY deploy/opensearch deploy/opensearch
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DBTCML_BUILD_TESTS=OFF -DBTCML_BUILD_BENCH=OFF \
    && cmake --build build --target btcml \
    && strip build/btcml

FROM debian:12.11-slim
# The runtime libraries of the binary (ldd build/btcml), CA certificates for exchanges and MLflow over https, and curl
# for the health check.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        ca-certificates curl libarchive13 libcurl4 libfmt9 libgomp1 libonnx1 libpq5 libprotobuf32 libspdlog1.10 \
        libsqlite3-0 libssl3 libyaml-cpp0.7 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 btcml \
    && useradd --system --uid 10001 --gid btcml --home-dir /var/lib/btcml --create-home --shell /usr/sbin/nologin btcml
COPY --from=build /src/build/btcml /usr/local/bin/btcml
# Numeric, so that the host and Kubernetes see a non-root user without reading the image's /etc/passwd.
USER 10001:10001
WORKDIR /var/lib/btcml
ENV BTCML_HOME=/var/lib/btcml \
    BTCML_LOG_FORMAT=json
VOLUME ["/var/lib/btcml"]
EXPOSE 8080
# Ready means a champion is loaded and the store answers (GET /readyz); a model-less server stays unhealthy.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/readyz"]
ENTRYPOINT ["/usr/local/bin/btcml"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
