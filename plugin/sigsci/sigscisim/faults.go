package sigscisim

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"
)

const defaultFailStatus = http.StatusServiceUnavailable

// FailNext makes the next n API calls answer status with a JSON message. A
// 429 means rate limiting and is answered in the dialect's shape (by default
// 429 with Retry-After). A status outside 400..599 means 503; n <= 0 clears.
func (s *Server) FailNext(n int, status int) {
	s.FailNextOn("", n, status)
}

// FailNextOn is FailNext for the calls of one endpoint (an Endpoint* name);
// calls of other endpoints pass. "" means every endpoint. It panics on an
// unknown endpoint name.
func (s *Server) FailNextOn(endpoint string, n int, status int) {
	if endpoint != "" && !slices.Contains(apiEndpoints(), endpoint) {
		panic(fmt.Sprintf("sigscisim: FailNextOn(%q): not an API endpoint", endpoint))
	}
	if status < 400 || status > 599 {
		status = defaultFailStatus
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.FailNext = max(n, 0)
	s.faults.FailStatus = status
	s.faults.FailEndpoint = endpoint
}

// DropNext makes the next n API calls lose their connection before they are
// handled (the client sees the connection close without an answer).
func (s *Server) DropNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.DropNext = max(n, 0)
}

// DropNextAfterHandling makes the next n API calls take effect (a POST creates
// its key set, a DELETE retires one) and then lose their connection without an
// answer: the ambiguous failure a client must not blindly repeat.
func (s *Server) DropNextAfterHandling(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.DropNextAfterHandling = max(n, 0)
}

// SetLatency delays every API call by d (0 turns it off). A waiting call ends
// early when its client goes away.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.Latency = Duration(max(d, 0))
}

// SetRateLimit allows perSecond API calls per user per second; excess calls
// get 429 with Retry-After. 0 turns the limit off.
func (s *Server) SetRateLimit(perSecond int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.RateLimit = max(perSecond, 0)
	clear(s.window)
}

// SetRetryAfter sets the Retry-After (in seconds, default 1) of every 429.
// Tests use 0 so that honouring it costs no time.
func (s *Server) SetRetryAfter(seconds int) {
	seconds = max(seconds, 0)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.RetryAfter = &seconds
}

// SetFaults replaces all faults at once. Invalid values are refused.
func (s *Server) SetFaults(f Faults) error {
	if err := f.validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
	clear(s.window)
	return nil
}

// Faults returns the current faults, with the remaining fail and drop counts.
func (s *Server) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.faults
	if f.RetryAfter != nil {
		v := *f.RetryAfter
		f.RetryAfter = &v
	}
	return f
}

// fault is what the pipeline decided for one API call.
type fault int

const (
	faultNone fault = iota
	faultDropBefore
	faultFail
	faultRateLimited
	faultDropAfter
)

// pendingFault consumes the fault (if any) that applies to the next call by
// email to endpoint, and returns it with the status to answer for faultFail.
func (s *Server) pendingFault(email, endpoint string) (fault, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := &s.faults
	switch {
	case f.DropNext > 0:
		f.DropNext--
		return faultDropBefore, 0
	case f.FailNext > 0 && (f.FailEndpoint == "" || f.FailEndpoint == endpoint):
		f.FailNext--
		status := f.FailStatus
		if status == 0 {
			status = defaultFailStatus
		}
		return faultFail, status
	case s.rateLimited(email):
		return faultRateLimited, http.StatusTooManyRequests
	case f.DropNextAfterHandling > 0:
		f.DropNextAfterHandling--
		return faultDropAfter, 0
	}
	return faultNone, 0
}

// rateLimited counts the call in its user's one-second window. Caller holds mu.
func (s *Server) rateLimited(email string) bool {
	if s.faults.RateLimit <= 0 {
		return false
	}
	now := s.now()
	w := s.window[email]
	if now.Sub(w.start) >= time.Second || now.Before(w.start) {
		w = rateWindow{start: now}
	}
	w.count++
	s.window[email] = w
	return w.count > s.faults.RateLimit
}

func (s *Server) latency() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return time.Duration(s.faults.Latency)
}

func (s *Server) retryAfter() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.faults.RetryAfter == nil {
		return "1"
	}
	return strconv.Itoa(*s.faults.RetryAfter)
}

// waitLatency holds the call for the configured latency; false if the
// client went away meanwhile.
func (s *Server) waitLatency(r *http.Request) bool {
	d := s.latency()
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

// dropConnection closes the client's connection without an answer.
func dropConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		_ = conn.Close()
		return
	}
	// HTTP/2 and other writers that cannot be hijacked: abort the stream.
	panic(http.ErrAbortHandler)
}

// discardWriter swallows an answer that is never to be sent.
type discardWriter struct{ header http.Header }

func (d *discardWriter) Header() http.Header         { return d.header }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}
