# syntax=docker/dockerfile:1
# anvil (Foundry's Ethereum development node) for deploy/compose.yaml, built
# from the npm package the tests use (@foundry-rs/anvil, pinned), so it needs
# only Docker Hub and the npm registry. Where ghcr.io is reachable,
# ghcr.io/foundry-rs/foundry:v1.7.1 with `entrypoint: ["anvil"]` is the same node.
ARG NODE_IMAGE=node:20-bookworm-slim
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${NODE_IMAGE} AS anvil
ARG ANVIL_VERSION=1.7.1
WORKDIR /opt/anvil
# The package pulls in the binary for the build platform as an optional
# dependency (@foundry-rs/anvil-linux-amd64 or -linux-arm64).
RUN npm install --no-audit --no-fund --loglevel=error "@foundry-rs/anvil@${ANVIL_VERSION}" \
 && install -D -m 0755 node_modules/@foundry-rs/anvil-linux-*/bin/anvil /out/anvil \
 && /out/anvil --version

FROM ${RUNTIME_IMAGE}
# The binary needs only glibc and libgcc. No curl: the health check below
# speaks HTTP with bash's /dev/tcp.
RUN useradd --system --uid 10002 --user-group --home-dir /nonexistent --shell /usr/sbin/nologin anvil
COPY --from=anvil /out/anvil /usr/local/bin/anvil
USER 10002:10002
EXPOSE 8545
# eth_chainId over HTTP/1.0; healthy once the node answers with a result.
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=5 \
    CMD ["bash", "-c", "body='{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"eth_chainId\",\"params\":[]}'; exec 3<>/dev/tcp/127.0.0.1/8545 && printf 'POST / HTTP/1.0\\r\\nHost: localhost\\r\\nContent-Type: application/json\\r\\nContent-Length: %d\\r\\n\\r\\n%s' \"${#body}\" \"$body\" >&3 && grep -q '\"result\"' <&3"]
ENTRYPOINT ["anvil"]
CMD ["--host", "0.0.0.0", "--port", "8545", "--chain-id", "31337", "--block-time", "1"]
