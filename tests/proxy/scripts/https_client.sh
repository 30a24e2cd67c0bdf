#!/bin/sh
# curl through wiretape over HTTPS, trusting wiretape's CA with --cacert.
# usage: https_client.sh PROXY_URL CA_FILE OUT_DIR BASE_URL
# Writes OUT_DIR/<name>.status ("200 HTTP/1.1"), .body (bytes exactly as received: no
# --compressed) and .headers for: GET /json, GET /gzip, GET /binary, POST /echo (curl
# picks HTTP/2 for these when it can), and GET /json over HTTP/1.1 (h1json).
set -eu
proxy=$1 ca=$2 out=$3 base=$4
mkdir -p "$out"

fetch() {
    name=$1; shift
    curl --silent --show-error --proxy "$proxy" --noproxy '' --cacert "$ca" \
         --max-time 20 --dump-header "$out/$name.headers" --output "$out/$name.body" \
         --write-out '%{http_code} HTTP/%{http_version}' "$@" > "$out/$name.status"
}

fetch json "$base/json"
fetch gzip "$base/gzip" --header 'Accept-Encoding: gzip'
fetch binary "$base/binary"
printf 'curl says \377\376 hello' > "$out/payload"
fetch echo "$base/echo" --header 'Content-Type: application/octet-stream' \
    --data-binary "@$out/payload"
fetch h1json "$base/json" --http1.1
