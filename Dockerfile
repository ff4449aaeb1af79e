# natter: multi-stage build. The runtime image holds one binary (templates, static files
# and migrations are compiled in) and runs as an unprivileged user.

FROM rust:1-slim-bookworm AS build
WORKDIR /src
# Dependencies first, so source edits do not rebuild them.
COPY Cargo.toml Cargo.lock ./
COPY bench/Cargo.toml bench/Cargo.toml
RUN mkdir -p src bench/src && echo 'fn main() {}' > src/main.rs && echo '' > src/lib.rs \
    && echo 'fn main() {}' > bench/src/main.rs \
    && cargo build --release --locked -p natter --bin natter || true
COPY . .
RUN touch src/main.rs src/lib.rs && cargo build --release --locked -p natter --bin natter

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app --create-home natter
COPY --from=build /src/target/release/natter /usr/local/bin/natter
USER natter
WORKDIR /app
ENV BIND=0.0.0.0:8000
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD curl -fsS http://127.0.0.1:8000/healthz || exit 1
ENTRYPOINT ["natter"]
CMD ["serve"]
