# One image, every freshet binary; a compose service picks its command.
# Build: docker build -t freshet:0.1.0 .
# The builder is pinned to a patch release (the tests of deploy/compose
# reject a floating tag such as golang:1.26-bookworm).
FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/ingest ./cmd/featurize ./cmd/serve ./cmd/freshet
# scratch has no /tmp, and os.CreateTemp (featurize backfill's run files)
# needs one: an empty directory, sticky and writable by everyone as on any
# system, copied in below with the rest of /rootfs.
RUN mkdir -p /rootfs/tmp && chmod 1777 /rootfs/tmp

# scratch: static binaries need nothing else; no shell, no package manager.
# Only the CA certificates (for rediss:// and https OTLP endpoints; Go reads
# /etc/ssl/certs/ca-certificates.crt) and /tmp come from the builder.
FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /rootfs/ /
COPY --from=build /out/ /usr/local/bin/
COPY schemas/example /schemas
ENV PATH=/usr/local/bin FRESHET_SCHEMAS=/schemas
USER 65532:65532
ENTRYPOINT []
CMD ["freshet", "--help"]
