# Sourced by the bench scripts: multipart bodies with a fixed boundary, for hey -D.
boundary=SALIENCYBENCH
multipart_type="multipart/form-data; boundary=$boundary"
body() { # PART FILE OUT: one form part named PART holding FILE, written to OUT
  { printf -- '--%s\r\nContent-Disposition: form-data; name="%s"; filename="%s"\r\nContent-Type: application/octet-stream\r\n\r\n' "$boundary" "$1" "$(basename "$2")"
    cat "$2"; printf -- '\r\n--%s--\r\n' "$boundary"; } > "$3"
}
