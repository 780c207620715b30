package plugin

import (
	"bytes"
	"io"
	"net/http"
	"sync"

	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci"
)

// maxPeekBytes bounds how much of a 400 answer is read to find the API's
// rate-limit wording (sigsci.IsRateLimitMessage).
const maxPeekBytes = 64 << 10

// callOutcome is what one call tells the window.
type callOutcome int

const (
	callAnswered    callOutcome = iota // the API answered (any status but rate limiting or 5xx)
	callRateLimited                    // the API refused the call for its rate
	callFailed                         // 5xx or no answer: says nothing about the rate
)

func (o callOutcome) String() string {
	switch o {
	case callAnswered:
		return "answered"
	case callRateLimited:
		return "rate limited"
	}
	return "failed"
}

// limitedTransport sends every request through the window of its client.
type limitedTransport struct {
	base  http.RoundTripper
	limit *adaptiveLimit
}

// newAPIHTTPClient is the HTTP client of one role's API client: connections
// are kept for reuse (up to pool per host, so a copy at full window does not
// open a connection per call) and every call goes through the window.
func newAPIHTTPClient(limit *adaptiveLimit, pool int) *http.Client {
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.MaxIdleConns = max(base.MaxIdleConns, pool)
	base.MaxIdleConnsPerHost = pool
	return &http.Client{Transport: &limitedTransport{base: base, limit: limit}}
}

func (t *limitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	call, err := t.limit.acquire(ctx)
	if err != nil {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, err
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		t.limit.release(ctx, call, callFailed)
		return nil, err
	}
	// The call holds its slot (and its connection) until its answer is
	// read and closed, so the next call finds the connection free.
	outcome := outcomeOf(resp)
	resp.Body = &releasingBody{ReadCloser: resp.Body, release: func() { t.limit.release(ctx, call, outcome) }}
	return resp, nil
}

// releasingBody frees its call's slot when the answer is closed.
type releasingBody struct {
	io.ReadCloser
	once    sync.Once
	release func()
}

func (b *releasingBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.release)
	return err
}

// closeIdle closes the kept connections of a client no longer used.
func (t *limitedTransport) closeIdle() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// outcomeOf classifies an answer. A 400 is read (and put back) to tell a
// rate limit from a bad request.
func outcomeOf(resp *http.Response) callOutcome {
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		return callRateLimited
	case resp.StatusCode >= 500:
		return callFailed
	case resp.StatusCode != http.StatusBadRequest:
		return callAnswered
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPeekBytes))
	rest := resp.Body
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(body), rest), rest}
	if err == nil && sigsci.IsRateLimitMessage(string(body)) {
		return callRateLimited
	}
	return callAnswered
}
