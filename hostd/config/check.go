package config

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// maxSocketPath is the longest path a unix socket address can hold on Linux
// (sun_path is 108 bytes including the terminating NUL).
const maxSocketPath = 107

func parseVaultURL(addr string) (*url.URL, error) {
	u, err := url.Parse(addr)
	if err != nil {
		return nil, errors.New("not a URL")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, errors.New("scheme must be http or https")
	case u.Host == "" || u.Hostname() == "":
		return nil, errors.New("no host")
	case u.User != nil:
		return nil, errors.New("credentials do not belong in the address")
	case u.RawQuery != "" || u.Fragment != "":
		return nil, errors.New("no query or fragment allowed")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, errors.New("port out of range")
		}
	}
	return u, nil
}

// redactURL hides a password written into a URL so it is not echoed back.
func redactURL(addr string) string {
	if u, err := url.Parse(addr); err == nil {
		return u.Redacted()
	}
	if i := strings.LastIndex(addr, "@"); i >= 0 {
		return "xxxxx" + addr[i:]
	}
	return addr
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// readTemplateSource reads the template file at path, which must be a
// regular file. The error names the path and the reason.
func readTemplateSource(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("cannot read template source: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("cannot read template source: %w", err)
	}
	if !info.Mode().IsRegular() {
		return "", fmt.Errorf("template source %s is not a regular file", path)
	}
	text, err := io.ReadAll(f)
	if err != nil {
		return "", fmt.Errorf("cannot read template source: %w", err)
	}
	return string(text), nil
}

func loadLocation(name string) (*time.Location, error) {
	if name == "" {
		return nil, errors.New("empty")
	}
	return time.LoadLocation(name)
}

var clockPattern = regexp.MustCompile(`^([01][0-9]|2[0-3]):([0-5][0-9])$`)

// parseClock parses a 24-hour "HH:MM" into the time since midnight.
func parseClock(s string) (time.Duration, error) {
	m := clockPattern.FindStringSubmatch(s)
	if m == nil {
		return 0, errors.New("not HH:MM")
	}
	h, _ := strconv.Atoi(m[1])
	min, _ := strconv.Atoi(m[2])
	return time.Duration(h)*time.Hour + time.Duration(min)*time.Minute, nil
}

func checkListenAddress(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("not host:port")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return errors.New("port must be a number from 0 to 65535")
	}
	return nil
}

// parseMode parses an octal permission string such as "0600" or "640".
func parseMode(s string) (os.FileMode, error) {
	s = strings.TrimPrefix(s, "0o")
	if s == "" {
		return 0, errors.New("empty")
	}
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil || n > 0o777 {
		return 0, errors.New("not an octal mode up to 0777")
	}
	return os.FileMode(n), nil
}

var unitPattern = regexp.MustCompile(`^[A-Za-z0-9:_.\\@-]+\.(service|socket|target|timer|path|mount)$`)

func checkUnitName(name string) error {
	switch {
	case len(name) > 255:
		return errors.New("longer than 255 bytes")
	case !unitPattern.MatchString(name):
		return errors.New("not a unit name ending in .service, .socket, .target, .timer, .path or .mount")
	}
	return nil
}

func quoteList(values []string) string {
	q := make([]string, len(values))
	for i, v := range values {
		q[i] = strconv.Quote(v)
	}
	return strings.Join(q, ", ")
}
