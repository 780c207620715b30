package vaulttest

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// FrontEnd is an HTTP front end to a Vault server, as a load balancer in
// front of Vault would be. It can compress JSON answers for clients that
// accept gzip (nginx with gzip_types application/json, Envoy's compressor)
// and it can fail every request while Vault itself keeps running (a network
// outage between the host and Vault).
type FrontEnd struct {
	URL string

	gzip atomic.Bool
	down atomic.Bool
	// Requests counts the requests that reached Vault through the front
	// end; Compressed the answers it gzipped.
	Requests, Compressed atomic.Int64
}

// NewFrontEnd starts a front end forwarding to upstream (for example
// Server.Addr, plain HTTP) and stops it when the test ends.
func NewFrontEnd(t testing.TB, upstream string) *FrontEnd {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	f := &FrontEnd{}
	rp := &httputil.ReverseProxy{
		Rewrite:        func(pr *httputil.ProxyRequest) { pr.SetURL(u); pr.Out.Host = pr.In.Host },
		ModifyResponse: f.compress,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.down.Load() {
			panic(http.ErrAbortHandler) // the connection drops without an answer
		}
		f.Requests.Add(1)
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

// SetGzip turns compression of JSON answers on or off.
func (f *FrontEnd) SetGzip(on bool) { f.gzip.Store(on) }

// SetDown makes every request fail (true) or reach Vault again (false).
func (f *FrontEnd) SetDown(down bool) { f.down.Store(down) }

// compress gzips a JSON answer when compression is on and the client said it
// accepts gzip, as a compressing load balancer does.
func (f *FrontEnd) compress(resp *http.Response) error {
	if !f.gzip.Load() || resp.Header.Get("Content-Encoding") != "" ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") ||
		!strings.Contains(resp.Request.Header.Get("Accept-Encoding"), "gzip") {
		return nil
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write(body); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	resp.Body = io.NopCloser(&b)
	resp.ContentLength = int64(b.Len())
	resp.Header.Set("Content-Length", strconv.Itoa(b.Len()))
	resp.Header.Set("Content-Encoding", "gzip")
	resp.Header.Add("Vary", "Accept-Encoding")
	f.Compressed.Add(1)
	return nil
}
