# The operator image: a static (musl) binary on distroless, running as the nonroot user 65532.
#   docker build -t remote-assist-operator:0.1.0 .
FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
# ring's C and assembly parts are compiled with musl's compiler wrapper.
ENV CC_x86_64_unknown_linux_musl=musl-gcc
WORKDIR /src
COPY . .
RUN cargo build --release --locked --target x86_64-unknown-linux-musl --bin remote-assist-operator \
 && cp target/x86_64-unknown-linux-musl/release/remote-assist-operator /remote-assist-operator

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /remote-assist-operator /remote-assist-operator
USER 65532:65532
ENTRYPOINT ["/remote-assist-operator"]
CMD ["run"]
