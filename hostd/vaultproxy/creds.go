package vaultproxy

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"sync"
)

// The proxy notes the access key id of every answer Vault gives for a
// Signal Sciences creds secret, so that hostd knows which key a rendered
// file holds from Vault's own data, never from the file: hostd/render joins
// these answers with its templates' dependencies. Only the access key id,
// an identifier, is kept; the secret key is never looked at.

// CredsSecret is a secret <Mount>/creds/<Role>/sites/<Site> of the sigsci
// secrets engine: one site's agent keys.
type CredsSecret struct {
	Mount, Role, Site string
}

// credsPath matches a creds secret of one site; the mount may have slashes.
var credsPath = regexp.MustCompile(`^(.+)/creds/([^/]+)/sites/([^/]+)$`)

// ParseCredsPath reports whether path (a Vault path without /v1/, such as
// "sigsci/creds/vault-user/sites/www") names a creds secret of one site.
func ParseCredsPath(path string) (CredsSecret, bool) {
	m := credsPath.FindStringSubmatch(strings.Trim(path, "/"))
	if m == nil {
		return CredsSecret{}, false
	}
	return CredsSecret{Mount: m[1], Role: m[2], Site: m[3]}, true
}

// maxKeyRuns bounds what is kept per path: runs of answers with the same
// key. Keys change at rotations only, so a few runs span a long time.
const maxKeyRuns = 16

// keyLog is every creds answer's access key, in the order Vault gave them.
type keyLog struct {
	mu    sync.Mutex
	next  uint64 // the position of the next answer
	paths map[string]*pathKeys
}

// pathKeys is the answers for one path: consecutive answers with the same
// key form one run.
type pathKeys struct {
	runs []keyRun // oldest first
	// dropped: runs were dropped for room; droppedLast is the position of
	// the last answer they held.
	dropped     bool
	droppedLast uint64
}

type keyRun struct {
	key         string // "" for an answer whose key could not be read
	first, last uint64
}

func (l *keyLog) add(path, key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.paths == nil {
		l.paths = map[string]*pathKeys{}
	}
	pos := l.next
	l.next++
	pk := l.paths[path]
	if pk == nil {
		pk = &pathKeys{}
		l.paths[path] = pk
	}
	if n := len(pk.runs); n > 0 && pk.runs[n-1].key == key {
		pk.runs[n-1].last = pos
		return
	}
	pk.runs = append(pk.runs, keyRun{key: key, first: pos, last: pos})
	if len(pk.runs) > maxKeyRuns {
		pk.dropped, pk.droppedLast = true, pk.runs[0].last
		pk.runs = pk.runs[1:]
	}
}

// Mark returns the position the next creds answer will have: AccessKeys
// with this mark covers the answers from now on.
func (p *Proxy) Mark() uint64 {
	p.keys.mu.Lock()
	defer p.keys.mu.Unlock()
	return p.keys.next
}

// AccessKeys returns the distinct access keys of the answers Vault gave for
// the creds secret at path (as ParseCredsPath takes it) from position since
// on, oldest first; "" stands for an answer whose key could not be read. It
// is empty when no such answer passed, or when the answers for path carry
// no access key: then it is not a sigsci creds secret.
func (p *Proxy) AccessKeys(path string, since uint64) []string {
	p.keys.mu.Lock()
	defer p.keys.mu.Unlock()
	pk := p.keys.paths[strings.Trim(path, "/")]
	if pk == nil {
		return nil
	}
	var keys []string
	seen := map[string]bool{}
	if pk.dropped && pk.droppedLast >= since {
		keys, seen[""] = append(keys, ""), true
	}
	for _, r := range pk.runs {
		if r.last >= since && !seen[r.key] {
			keys, seen[r.key] = append(keys, r.key), true
		}
	}
	return keys
}

// AnsweredKeys returns the distinct access keys of the answers Vault gave
// for any creds secret from position since on, without the unknown "".
func (p *Proxy) AnsweredKeys(since uint64) []string {
	p.keys.mu.Lock()
	defer p.keys.mu.Unlock()
	var keys []string
	seen := map[string]bool{"": true}
	for _, pk := range p.keys.paths {
		for _, r := range pk.runs {
			if r.last >= since && !seen[r.key] {
				keys, seen[r.key] = append(keys, r.key), true
			}
		}
	}
	return keys
}

// noteCreds logs the access key of a successful answer for a creds secret.
// An answer that is not JSON with a data object holding "accessKey" is no
// sigsci creds answer and is not logged; one whose body cannot be read is
// logged with an unknown key, so nobody takes the last known key for it.
func (p *Proxy) noteCreds(resp *http.Response) error {
	path := strings.TrimPrefix(resp.Request.URL.Path, "/v1/")
	if resp.StatusCode != http.StatusOK || !credsPath.MatchString(strings.Trim(path, "/")) {
		return nil
	}
	if resp.ContentLength > maxRewriteBody || !isJSON(resp) {
		p.keys.add(strings.Trim(path, "/"), "")
		return nil
	}
	body, err := readBody(resp)
	if err != nil {
		p.keys.add(strings.Trim(path, "/"), "")
		return err
	}
	key, ok := accessKeyOf(body)
	if ok {
		p.keys.add(strings.Trim(path, "/"), key)
	}
	return nil
}

// accessKeyOf reads data.accessKey from a Vault answer. ok is false when
// the answer has none (not a creds answer); key is "" when the body cannot
// be read as a Vault answer at all.
func accessKeyOf(body []byte) (key string, ok bool) {
	var secret struct {
		Data map[string]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &secret); err != nil {
		return "", true
	}
	raw, found := secret.Data["accessKey"]
	if !found {
		return "", false
	}
	if err := json.Unmarshal(raw, &key); err != nil || key == "" {
		return "", true
	}
	return key, true
}
