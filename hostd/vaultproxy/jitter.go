package vaultproxy

import (
	"context"
	"net/http"
	"time"
)

// DefaultFailureJitter bounds the random delay of an answer saying Vault is
// unavailable, when Options leaves FailureJitter zero.
//
// consul-template retries a failed read after a backoff that doubles up to
// max_backoff and has no jitter, and hostd cannot change its retry function.
// Hosts that lost Vault together would keep retrying in step and hit it
// together when it is back. Delaying each such answer by a random part of a
// few seconds moves every host's retry schedule by a random walk (after n
// failed retries, a spread of about 1.4s·√n with 5s), while a short blip
// costs at most one delay.
const DefaultFailureJitter = 5 * time.Second

// unavailable reports the answers that say Vault could not serve the read
// now (and consul-template will retry): rate limited, sealed, unreachable,
// not answering, or hostd not logged in yet.
func unavailable(code int) bool {
	return code == http.StatusTooManyRequests || code >= http.StatusInternalServerError
}

// failureDelay is a random delay in [0, FailureJitter).
func (p *Proxy) failureDelay() time.Duration {
	if p.opts.FailureJitter <= 0 {
		return 0
	}
	return time.Duration(p.opts.Rand() * float64(p.opts.FailureJitter))
}

// jitteredWriter delays an unavailable answer before its status goes out.
type jitteredWriter struct {
	http.ResponseWriter
	ctx   context.Context
	p     *Proxy
	wrote bool
}

func (w *jitteredWriter) WriteHeader(code int) {
	if !w.wrote && unavailable(code) {
		if d := w.p.failureDelay(); d > 0 {
			// A request gone meanwhile ends the delay; its answer then
			// goes nowhere, so there is nothing to do with the error.
			_ = w.p.sleep(w.ctx, d)
		}
	}
	w.wrote = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *jitteredWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *jitteredWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
