package vaultproxy

import (
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// decompress turns a gzip answer the Transport did not decompress (a front
// end that compresses whether or not it was asked) into a plain one, so the
// proxy can inspect it and consul-template reads what Vault wrote. Any other
// encoding passes through untouched.
func decompress(resp *http.Response) error {
	if !strings.EqualFold(strings.TrimSpace(resp.Header.Get("Content-Encoding")), "gzip") {
		return nil
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		resp.Body.Close()
		return fmt.Errorf("decompress vault response: %w", err)
	}
	resp.Body = gzipBody{Reader: zr, raw: resp.Body}
	resp.Header.Del("Content-Encoding")
	resp.Header.Del("Content-Length")
	resp.ContentLength = -1
	resp.Uncompressed = true
	return nil
}

// gzipBody reads the decompressed stream and closes the compressed one.
type gzipBody struct {
	*gzip.Reader
	raw io.ReadCloser
}

func (b gzipBody) Close() error {
	b.Reader.Close()
	return b.raw.Close()
}
