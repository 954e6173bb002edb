# One image for every service: `brigade serve <service>`.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p brigade

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/brigade /usr/local/bin/brigade
USER 65534
ENTRYPOINT ["brigade"]
