package sigsci

import (
	"fmt"
	"net/url"
	"strings"
)

const maxNameLen = 100

// ValidName reports whether s is a valid corp or site name: [0-9a-z_.-]+,
// 1 to 100 characters. "." and ".." are refused: as path segments they would
// address another resource.
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > maxNameLen || s == "." || s == ".." {
		return false
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r == '_' || r == '.' || r == '-') {
			return false
		}
	}
	return true
}

func checkName(kind, s string) error {
	if !ValidName(s) {
		return fmt.Errorf("sigsci: invalid %s name %q: use 1-%d characters of a-z, 0-9, '_', '.', '-'", kind, s, maxNameLen)
	}
	return nil
}

const maxAccessKeyLen = 200

// checkAccessKey refuses access keys that cannot be one path segment.
func checkAccessKey(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("sigsci: access key is empty")
	case s == "." || s == "..":
		return fmt.Errorf("sigsci: invalid access key %q", s)
	case len(s) > maxAccessKeyLen:
		return fmt.Errorf("sigsci: access key is longer than %d characters", maxAccessKeyLen)
	case strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return fmt.Errorf("sigsci: access key contains control characters")
	}
	return nil
}

func corpPath(corp string) (string, error) {
	if err := checkName("corp", corp); err != nil {
		return "", err
	}
	return "/corps/" + corp, nil
}

func sitePath(corp, site string) (string, error) {
	p, err := corpPath(corp)
	if err != nil {
		return "", err
	}
	if err := checkName("site", site); err != nil {
		return "", err
	}
	return p + "/sites/" + site, nil
}

func keySetPath(corp, site, accessKey string) (string, error) {
	p, err := sitePath(corp, site)
	if err != nil {
		return "", err
	}
	if err := checkAccessKey(accessKey); err != nil {
		return "", err
	}
	return p + "/agentKeys/" + url.PathEscape(accessKey), nil
}
