# syntax=docker/dockerfile:1
#
# kiln as a container: `docker build -t kiln .` then
#   docker run -p 8080:8080 -v kiln-data:/data kiln
# The server listens on 0.0.0.0:8080 and keeps its SQLite database and blobs in
# the /data volume. `docker run kiln migrate` (or any other subcommand) works too.

############################ build ############################
FROM rust:1.95-slim-bookworm AS builder
WORKDIR /build

# rust-toolchain.toml also asks for rustfmt and clippy, which a release build
# does not need; use the toolchain the image ships so rustup downloads nothing.
ENV RUSTUP_TOOLCHAIN=${RUST_VERSION:-1.95.0} \
    CARGO_TERM_COLOR=never

# Everything the build reads: the manifests, the sources, the migrations
# embedded by sqlx::migrate!, the defaults embedded from config/, and the crates' bench
# and test targets (cargo refuses a manifest whose declared targets are missing,
# even for `cargo fetch`, so there is no separate dependency-only layer; the
# cache mounts below keep downloads and compiled dependencies instead).
COPY Cargo.toml Cargo.lock rust-toolchain.toml build.rs ./
COPY src ./src
COPY crates ./crates
COPY migrations ./migrations
COPY config ./config
COPY tests ./tests

# gcc (for the bundled SQLite) is part of the rust image. The cache mounts keep
# the crate downloads and compiled dependencies between builds; the binary is
# copied out of the target cache in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/build/target \
    cargo build --release --locked --bin kiln \
    && install -m 0755 target/release/kiln /usr/local/bin/kiln

############################ run ############################
FROM debian:bookworm-slim AS runtime

# A fixed, unprivileged uid so volume ownership is predictable on the host.
RUN groupadd --gid 10001 kiln \
    && useradd --uid 10001 --gid kiln --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin kiln \
    && mkdir -p /data \
    && chown kiln:kiln /data

COPY --from=builder /usr/local/bin/kiln /usr/local/bin/kiln

ENV KILN_LISTEN=0.0.0.0:8080 \
    KILN_DATA_DIR=/data \
    KILN_LOG_FORMAT=json

USER kiln:kiln
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080

# The binary checks its own /healthz (on 127.0.0.1 and the port of KILN_LISTEN):
# no curl in the image.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["kiln", "healthcheck"]

ENTRYPOINT ["kiln"]
CMD ["serve"]
