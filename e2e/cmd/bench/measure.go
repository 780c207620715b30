package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat: 100
// on every Linux architecture Go supports.
const clockTicks = 100

// procSample is one reading of a process's memory and CPU time.
type procSample struct {
	rssKiB, hwmKiB int64         // VmRSS and VmHWM
	cpu            time.Duration // utime + stime
}

// sampleProc reads /proc/<pid>/status and /proc/<pid>/stat.
func sampleProc(pid int) (procSample, error) {
	var s procSample
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, fmt.Errorf("reading the process status: %w", err)
	}
	for line := range strings.Lines(string(status)) {
		name, value, ok := strings.Cut(line, ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		kib, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			return s, fmt.Errorf("parsing %s %q: %w", name, value, err)
		}
		if name == "VmRSS" {
			s.rssKiB = kib
		} else {
			s.hwmKiB = kib
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, fmt.Errorf("reading the process stat: %w", err)
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// the fields after the last ")" start with field 3, the state.
	i := strings.LastIndex(string(stat), ") ")
	if i < 0 {
		return s, fmt.Errorf("parsing the process stat: no command name")
	}
	fields := strings.Fields(string(stat)[i+2:])
	if len(fields) < 13 {
		return s, fmt.Errorf("parsing the process stat: %d fields after the name", len(fields))
	}
	var ticks int64
	for _, f := range fields[11:13] { // utime (field 14), stime (field 15)
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return s, fmt.Errorf("parsing the process CPU time %q: %w", f, err)
		}
		ticks += n
	}
	s.cpu = time.Duration(ticks) * time.Second / clockTicks
	return s, nil
}

// waitForKey polls path every poll until it holds accessKey, and returns how
// long that took from start.
func waitForKey(ctx context.Context, path, accessKey string, start time.Time, poll time.Duration) (time.Duration, error) {
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		data, err := os.ReadFile(path)
		if err == nil && strings.Contains(string(data), `"`+accessKey+`"`) {
			return time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("waiting for %s to hold access key %s: %w", path, accessKey, ctx.Err())
		case <-tick.C:
		}
	}
}

// requestCount is what one tool asked Vault, from the audit log.
type requestCount struct {
	total, login, creds int
	byPath              map[string]int // every path but the creds, → requests
	credsReads          []time.Time
}

// withPrefix counts the requests to paths under prefix (not the creds).
func (c requestCount) withPrefix(prefix string) int {
	n := 0
	for path, count := range c.byPath {
		if strings.HasPrefix(path, prefix) {
			n += count
		}
	}
	return n
}

// auditEntry is the part of a file audit device line the bench reads.
type auditEntry struct {
	Time time.Time `json:"time"`
	Type string    `json:"type"`
	Auth struct {
		Policies []string `json:"policies"`
	} `json:"auth"`
	Request struct {
		Path string `json:"path"`
	} `json:"request"`
}

// countRequests counts the requests in the audit log between from and to
// that did not come with the operator's root token: in a trial, those are
// the tool's.
func countRequests(auditLog, credsPath string, from, to time.Time) (requestCount, error) {
	c := requestCount{byPath: map[string]int{}}
	f, err := os.Open(auditLog)
	if err != nil {
		return c, fmt.Errorf("opening the audit log: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		var e auditEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return c, fmt.Errorf("parsing the audit log: %w", err)
		}
		if e.Type != "request" || slices.Contains(e.Auth.Policies, "root") || e.Time.Before(from) || e.Time.After(to) {
			continue
		}
		c.total++
		switch path := e.Request.Path; path {
		case credsPath:
			c.creds++
			c.credsReads = append(c.credsReads, e.Time)
		default:
			if strings.HasPrefix(path, "auth/approle/login") {
				c.login++
			}
			c.byPath[path]++
		}
	}
	if err := sc.Err(); err != nil {
		return c, fmt.Errorf("reading the audit log: %w", err)
	}
	return c, nil
}

// medianGap is the median time between consecutive reads.
func medianGap(reads []time.Time) time.Duration {
	if len(reads) < 2 {
		return 0
	}
	slices.SortFunc(reads, func(a, b time.Time) int { return a.Compare(b) })
	gaps := make([]time.Duration, 0, len(reads)-1)
	for i := 1; i < len(reads); i++ {
		gaps = append(gaps, reads[i].Sub(reads[i-1]))
	}
	return median(gaps)
}

// vaultToken matches Vault's service, batch and recovery tokens.
var vaultToken = regexp.MustCompile(`\bhv[sbr]\.[A-Za-z0-9_-]{20,}`)

// onDisk lists the files under dir (relative names) that hold a Vault token
// and those that hold one of the agent secret keys.
func onDisk(dir string, secretKeys []string) (tokenFiles, keyFiles []string, err error) {
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if vaultToken.Match(data) {
			tokenFiles = append(tokenFiles, rel)
		}
		if containsAny(string(data), secretKeys) {
			keyFiles = append(keyFiles, rel)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("looking at what the tool wrote under %s: %w", dir, err)
	}
	return tokenFiles, keyFiles, nil
}

// logLeaks names what a tool's log reveals: a Vault token or a secret key.
func logLeaks(logPath string, secretKeys []string) ([]string, error) {
	data, err := os.ReadFile(logPath)
	if err != nil {
		return nil, fmt.Errorf("reading the tool's log: %w", err)
	}
	var leaks []string
	if vaultToken.Match(data) {
		leaks = append(leaks, "a Vault token")
	}
	if containsAny(string(data), secretKeys) {
		leaks = append(leaks, "a secret key")
	}
	return leaks, nil
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if sub != "" && strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
