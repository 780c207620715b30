package sigsci

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode"

	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci/internal/wire"
)

// APIError is returned for non-2xx answers (after retries).
type APIError struct {
	Method     string
	Path       string // URL path only (relative to the API root), no query, no host
	StatusCode int
	Message    string // the API's {"message": ...}
}

// Error reads like "sigsci: GET /corps/c/sites: 404 Not Found: corp not found".
func (e *APIError) Error() string {
	status := fmt.Sprintf("%d %s", e.StatusCode, http.StatusText(e.StatusCode))
	if e.Message == "" {
		return fmt.Sprintf("sigsci: %s %s: %s", e.Method, e.Path, strings.TrimSpace(status))
	}
	return fmt.Sprintf("sigsci: %s %s: %s: %s", e.Method, e.Path, strings.TrimSpace(status), e.Message)
}

// IsNotFound reports whether err is (or wraps) an APIError with status 404.
func IsNotFound(err error) bool {
	return StatusCode(err) == http.StatusNotFound
}

// StatusCode returns the HTTP status of the APIError in err's chain, or 0.
func StatusCode(err error) int {
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr.StatusCode
	}
	return 0
}

// ErrOutcomeUnknown is wrapped by a CreateKeySet error when the request may
// have reached the API and a key set may have been created (connection lost
// after sending, timeout, 5xx). The client does not repeat such a POST; the
// caller lists the key sets to find out.
var ErrOutcomeUnknown = errors.New("the key set may or may not have been created")

const maxMessageRunes = 300

// decodeErrorMessage returns the "message" of a JSON error body, or else a
// short single-line excerpt of the body.
func decodeErrorMessage(body []byte) string {
	var e wire.Error
	if err := json.Unmarshal(body, &e); err == nil && e.Message != "" {
		return shorten(e.Message)
	}
	return shorten(string(body))
}

func shorten(s string) string {
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || !unicode.IsPrint(r)
	}), " ")
	if r := []rune(s); len(r) > maxMessageRunes {
		return string(r[:maxMessageRunes]) + "…"
	}
	return s
}
