# syntax=docker/dockerfile:1
# Multi-stage build: a static presenced binary on a minimal base, run as a
# non-root user. The image expects an external PostgreSQL
# (PRESENCE_DATABASE_URL); the embedded private cluster needs the PostgreSQL
# server binaries, which this image deliberately does not carry.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# CGO_ENABLED=0: the static base has no libcrypto, so an RSA certificate's
# handshake signatures are Go's here (README, "RSA signatures by OpenSSL");
# prefer an ECDSA certificate with this image.
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/presenced ./cmd/presenced
# /data is where the outbox and local state go (PRESENCE_DATA_DIR in
# docker-compose.yml): owned by the non-root user, so a named volume mounted
# there starts out writable.
RUN mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/presenced /usr/local/bin/presenced
COPY --from=build --chown=65532:65532 /out/data /data
USER nonroot:nonroot
EXPOSE 1883 8080
# Off loopback the API needs tokens (PRESENCE_API_READ_TOKENS_FILE, …) or an
# explicit PRESENCE_API_OPEN=true, and MQTT clients need credentials.
ENV PRESENCE_MQTT_ADDR=:1883 PRESENCE_HTTP_ADDR=:8080
ENTRYPOINT ["/usr/local/bin/presenced"]
CMD ["serve"]
