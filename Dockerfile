# One image, every freshet binary; a compose service picks its command.
# Build: docker build -t freshet:0.1.0 .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/ingest ./cmd/featurize ./cmd/serve ./cmd/freshet

# scratch: static binaries need nothing else; no shell, no package manager.
FROM scratch
COPY --from=build /out/ /usr/local/bin/
COPY schemas/example /schemas
ENV PATH=/usr/local/bin FRESHET_SCHEMAS=/schemas
USER 65532:65532
ENTRYPOINT []
CMD ["freshet", "--help"]
