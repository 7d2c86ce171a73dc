# syntax=docker/dockerfile:1
#
# etax-authz as a container: built on the Rust image, run as an unprivileged
# user on Debian slim, state (identities, decision log, pseudonym key, API
# keys) on one volume. See README "Packaging".
#
#   docker build -t etax-authz .
#   docker run --rm -v etax-data:/var/lib/etax-authz etax-authz \
#       keys create --id portal --scope authorize,login
#   docker run -d -p 8180:8180 -v etax-data:/var/lib/etax-authz etax-authz

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# The cache mounts keep the registry and compiled dependencies between
# builds; the binary is copied out because the target mount does not persist
# into the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin etax-authz \
    && cp target/release/etax-authz /usr/local/bin/etax-authz

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/etax-authz \
        --shell /usr/sbin/nologin etax \
    && install -d -o etax -g etax -m 0700 /var/lib/etax-authz
COPY --from=build /usr/local/bin/etax-authz /usr/local/bin/etax-authz
# Policies, schema and the demo identities, read relative to the working
# directory (the `serve` defaults `policies`, `schemas/etax.cedarschema`,
# `examples/demo.json`). Mount over /usr/share/etax-authz/policies to serve
# your own rules.
WORKDIR /usr/share/etax-authz
COPY policies ./policies
COPY schemas ./schemas
COPY examples/demo.json ./examples/demo.json
# Off loopback the service refuses to run open: it needs the keys file
# (`etax-authz keys create` writes it; the server follows its changes).
ENV ETAX_LISTEN=0.0.0.0:8180 \
    ETAX_DATA=/var/lib/etax-authz \
    ETAX_API_KEYS=/var/lib/etax-authz/keys.json
VOLUME ["/var/lib/etax-authz"]
USER etax
EXPOSE 8180
# /readyz without curl in the image: bash's /dev/tcp, one HTTP/1.0 request,
# healthy only on a 200 status line.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8180 && printf 'GET /readyz HTTP/1.0\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
# The binary handles SIGTERM itself (graceful stop), so it runs as PID 1.
ENTRYPOINT ["etax-authz"]
CMD ["serve"]
