# wasmflow in a container: `docker build -t wasmflow .` then
# `docker run -p 5000:5000 -v wasmflow-data:/data wasmflow`.
# Stage 1 builds the release binary (the built-in plugins are compiled for wasm32-wasip2 and
# embedded by host/builtin-plugins' build script, so the image needs nothing else at run time).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN rustup target add wasm32-wasip2 \
    && cargo build --release --locked -p wasmflow-server \
    && cp target/release/wasmflow /usr/local/bin/wasmflow

# Stage 2: the binary alone on a slim base, run as an unprivileged user.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data --create-home wasmflow
COPY --from=build /usr/local/bin/wasmflow /usr/local/bin/wasmflow
# By number, so that the host and orchestrators (runAsNonRoot) see a non-root id without the
# image's /etc/passwd.
USER 10001
WORKDIR /data
# The store, the artifacts, installed plugins and the compile cache all live in the volume.
VOLUME ["/data"]
ENV XDG_CACHE_HOME=/data/cache \
    MLFLOW_HOST=0.0.0.0 \
    MLFLOW_PORT=5000 \
    MLFLOW_BACKEND_STORE_URI=sqlite:////data/mlflow.db \
    MLFLOW_ARTIFACTS_DESTINATION=/data/mlartifacts \
    WASMFLOW_PLUGINS_DIR=/data/plugins
EXPOSE 5000
# Exit status 1 for any failure (Docker reserves 2; curl's own codes are larger).
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["sh", "-c", "curl -fsS http://127.0.0.1:5000/health || exit 1"]
ENTRYPOINT ["wasmflow"]
CMD ["server"]
