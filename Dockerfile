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
# The appliance's layout on every interface of the container (without a
# config pushpull listens on loopback only). It is the lowest layer:
# variables and flags override it, and another file can be mounted and
# named in PUSHPULL_CONFIG. The publish port must stay on the internal
# network.
COPY packaging/container.json /etc/pushpull/config.json
ENV PUSHPULL_CONFIG=/etc/pushpull/config.json
EXPOSE 8010 9010
STOPSIGNAL SIGTERM
ENTRYPOINT ["/pushpull"]
CMD ["serve"]
