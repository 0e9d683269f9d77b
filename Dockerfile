# The pushpull image: the static binary alone, on scratch, as a non-root
# user. Run it as the official push server container is run:
#
#   docker run --read-only --cap-drop ALL --security-opt no-new-privileges \
#     --tmpfs /tmp -e PUSHPULL_KEY=... -p 8010:8010 -p 9010:9010 pushpull
#
# Build: docker build -t pushpull . (or scripts/package --docker).
# SOURCE_DATE_EPOCH and VERSION make two builds of one commit the same.

# The builder is pinned to the Go release go.mod names.
FROM golang:1.26.8-bookworm AS build
ARG VERSION=dev
ARG SOURCE_DATE_EPOCH=0
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false \
      -ldflags "-s -w -buildid= -X main.version=${VERSION}" -o /out/pushpull ./cmd/pushpull \
 && touch -d "@${SOURCE_DATE_EPOCH}" /out/pushpull

FROM scratch
# Root certificates, for Redis over TLS (storage.tls).
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/pushpull /pushpull
# nobody:nogroup by number: scratch has no /etc/passwd. Ports above 1024
# need no capability.
USER 65534:65534
# In a container the servers listen on every interface (the defaults are
# loopback); the publish port must still not be published to the Internet.
ENV PUSHPULL_SUB_LISTEN=0.0.0.0:8010 \
    PUSHPULL_PUB_LISTEN=0.0.0.0:9010
EXPOSE 8010 9010
STOPSIGNAL SIGTERM
ENTRYPOINT ["/pushpull"]
CMD ["serve"]
