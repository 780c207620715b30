package vaultproxy

// This file reads and replaces the bodies of Vault's answers the proxy
// looks into.

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// maxRewriteBody bounds the response bodies the proxy reads to rewrite;
// larger answers pass through untouched.
const maxRewriteBody = 8 << 20

func isJSON(resp *http.Response) bool {
	return strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json")
}

// readBody reads the whole body (bounded) and puts it back for the client.
func readBody(resp *http.Response) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxRewriteBody+1))
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("read vault response: %w", err)
	}
	setBody(resp, body)
	return body, nil
}

func setBody(resp *http.Response, body []byte) {
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
}
