# gproxy as a static binary on an empty base, running as a non-root user.
#
#   docker build -t gproxy:latest .
#   docker build --target backend -t grpc-backend:latest .   # the example backend
#
# The image reads /etc/nginx/nginx.conf (mount yours there) and uses
# /run/gproxy/ as its prefix (pid file, default error log): mount a
# writable volume there when the root filesystem is read-only.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.defaultPrefix=/run/gproxy/" -o /out/gproxy ./cmd/gproxy \
 && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/backend ./examples/backend \
 && mkdir -p /out/run/gproxy/logs /out/etc/nginx

FROM scratch AS backend
COPY --from=build /out/backend /backend
USER 65532:65532
ENTRYPOINT ["/backend"]

FROM scratch
COPY --from=build /out/gproxy /gproxy
COPY --from=build --chown=65532:65532 /out/run /run
COPY --from=build /out/etc /etc
USER 65532:65532
EXPOSE 8080
STOPSIGNAL SIGQUIT
ENTRYPOINT ["/gproxy", "-g", "daemon off;"]
