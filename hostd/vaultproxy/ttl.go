package vaultproxy

// This file rewrites the ttl hints in Vault's answers, so that
// consul-template reads secrets again on hostd's refresh interval.

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// rewriteTTL makes consul-template re-read secrets without a lease on
// hostd's cadence: the ttl of a rotating secret (data has rotation_period
// and ttl) is shortened to the jittered refresh interval, and the
// lease_duration of a static secret (no lease id) is capped at the refresh
// interval. Otherwise consul-template would fall back to its default
// lease duration, which it keeps process-wide from the first configuration,
// so a reload could not change it.
func (p *Proxy) rewriteTTL(resp *http.Response) error {
	if resp.ContentLength > maxRewriteBody {
		return nil
	}
	body, err := readBody(resp)
	if err != nil {
		return err
	}
	out, changed := p.rewrittenBody(body)
	if changed {
		setBody(resp, out)
	}
	return nil
}

func (p *Proxy) rewrittenBody(body []byte) ([]byte, bool) {
	var secret map[string]json.RawMessage
	if json.Unmarshal(body, &secret) != nil {
		return nil, false
	}
	var leaseID string
	if raw, ok := secret["lease_id"]; ok && json.Unmarshal(raw, &leaseID) != nil {
		return nil, false
	}
	var data map[string]json.RawMessage
	if leaseID != "" || json.Unmarshal(secret["data"], &data) != nil || data == nil {
		return nil, false
	}
	changed := false
	if _, rotating := data["rotation_period"]; rotating {
		changed = p.shortenRotatingTTL(secret, data)
	} else {
		changed = p.setStaticLease(secret)
	}
	if !changed {
		return nil, false
	}
	out, err := json.Marshal(secret)
	if err != nil {
		return nil, false
	}
	return out, true
}

// shortenRotatingTTL sets data.ttl to at most the jittered refresh interval,
// as a JSON integer of at least 1: consul-template cannot read a string ttl
// and treats 0 as an error.
func (p *Proxy) shortenRotatingTTL(secret, data map[string]json.RawMessage) bool {
	rawTTL, ok := data["ttl"]
	if !ok {
		return false
	}
	ttl, ok := ttlSeconds(rawTTL)
	if !ok {
		return false
	}
	newTTL := max(min(ttl, p.jitteredRefresh()), 1) // 0 means "rotating now": read again soon, not never
	if newTTL == ttl && rawTTL[0] != '"' {
		return false // already a number and short enough
	}
	data["ttl"] = json.RawMessage(strconv.FormatInt(newTTL, 10))
	raw, err := json.Marshal(data)
	if err != nil {
		return false
	}
	secret["data"] = raw
	return true
}

// setStaticLease caps the lease_duration of a secret without a lease id at
// the refresh interval. With no lease there is nothing to renew, only data
// to read again; KV version 1 reports its mount's ttl (768h by default) and
// KV version 2 reports 0 (consul-template's process-wide default). Either
// way hostd's refresh interval applies (consul-template re-reads after
// 85–95 % of it, its own jitter).
func (p *Proxy) setStaticLease(secret map[string]json.RawMessage) bool {
	refresh := max(int64(p.opts.RefreshInterval/time.Second), 1)
	var d int64
	if raw, ok := secret["lease_duration"]; ok && json.Unmarshal(raw, &d) != nil {
		return false
	}
	if d > 0 && d <= refresh {
		return false
	}
	secret["lease_duration"] = json.RawMessage(strconv.FormatInt(refresh, 10))
	return true
}

// ttlSeconds reads a ttl given as a JSON integer or a string of digits.
func ttlSeconds(raw json.RawMessage) (int64, bool) {
	var n json.Number
	if err := json.Unmarshal(raw, &n); err == nil {
		v, err := n.Int64()
		return v, err == nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		return v, err == nil
	}
	return 0, false
}

// jitteredRefresh is the refresh interval ±10 %, in whole seconds, never 0.
func (p *Proxy) jitteredRefresh() int64 {
	d := float64(p.opts.RefreshInterval) * (0.9 + 0.2*p.opts.Rand())
	s := int64(d / float64(time.Second))
	if s < 1 {
		s = 1
	}
	return s
}
