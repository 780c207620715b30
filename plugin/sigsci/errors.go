package sigsci

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
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
	Message    string // the API's {"message": ...}, shortened; "" if it sent none
	// Detail says what the answer was when it carried no JSON message: its
	// media type and size, never its content.
	Detail string
	// RateLimited is true for a 429, and for a 400 whose message says the
	// rate limit was exceeded.
	RateLimited bool
}

// Error reads like "sigsci: GET /corps/c/sites: 404 Not Found: corp not found".
func (e *APIError) Error() string {
	status := strings.TrimSpace(fmt.Sprintf("%d %s", e.StatusCode, http.StatusText(e.StatusCode)))
	switch {
	case e.Message != "":
		return fmt.Sprintf("sigsci: %s %s: %s: %s", e.Method, e.Path, status, e.Message)
	case e.Detail != "":
		return fmt.Sprintf("sigsci: %s %s: %s (%s)", e.Method, e.Path, status, e.Detail)
	default:
		return fmt.Sprintf("sigsci: %s %s: %s", e.Method, e.Path, status)
	}
}

// IsNotFound reports whether err is (or wraps) an APIError with status 404.
func IsNotFound(err error) bool {
	return StatusCode(err) == http.StatusNotFound
}

// IsRateLimited reports whether err is (or wraps) an APIError the API sent
// because of rate limiting (a 429, or a 400 saying so), as it was after the
// retries.
func IsRateLimited(err error) bool {
	var apiErr *APIError
	return errors.As(err, &apiErr) && (apiErr.RateLimited || apiErr.StatusCode == http.StatusTooManyRequests)
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

// maxMessageRunes bounds the API message quoted in an error.
const maxMessageRunes = 300

// decodeErrorMessage returns the "message" of a JSON error body, shortened
// to one line. For any other body it returns no message, and a detail that
// names the body's media type and size: a proxy's error page or an echoing
// server must not reach Vault's answers and logs.
func decodeErrorMessage(body []byte, contentType string) (message, detail string) {
	var e wire.Error
	if err := json.Unmarshal(body, &e); err == nil && e.Message != "" {
		return shorten(e.Message), ""
	}
	if len(body) == 0 {
		return "", ""
	}
	media, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		media = "unknown type"
	}
	return "", fmt.Sprintf("the answer carries no JSON message: %s, %d bytes", shorten(media), len(body))
}

// IsRateLimitMessage reports whether an API message (or an answer's body
// holding one) says the rate limit was exceeded: how the API words a rate
// limit it answers with 400.
func IsRateLimitMessage(msg string) bool {
	return strings.Contains(strings.ToLower(msg), strings.ToLower(wire.RateLimitMessage))
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
