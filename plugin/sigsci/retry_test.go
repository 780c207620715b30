package sigsci

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"0", 0, true},
		{"7", 7 * time.Second, true},
		{" 12 ", 12 * time.Second, true},
		{"-3", 0, false},
		{"soon", 0, false},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, true},
	}
	for _, c := range cases {
		got, ok := parseRetryAfter(c.in, now)
		if got != c.want || ok != c.ok {
			t.Errorf("parseRetryAfter(%q) = %s, %t; want %s, %t", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestBackoffGrowsWithinBounds(t *testing.T) {
	c, err := New(Config{Email: "e@example.com", Token: "t", MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; n < 70; n++ {
		step := min(100*time.Millisecond<<min(n, 20), time.Second)
		for range 20 {
			d := c.backoff(n)
			if d < step/2 || d > step {
				t.Fatalf("backoff(%d) = %s, want within [%s, %s]", n, d, step/2, step)
			}
		}
	}
}

func TestNewValidatesConfig(t *testing.T) {
	ok := Config{Email: "e@example.com", Token: "tok"}
	bad := map[string]Config{
		"scheme":      {BaseURL: "ftp://x/api", Email: "e", Token: "t"},
		"relative":    {BaseURL: "/api/v0", Email: "e", Token: "t"},
		"userinfo":    {BaseURL: "https://u:p@x/api", Email: "e", Token: "t"},
		"query":       {BaseURL: "https://x/api?a=b", Email: "e", Token: "t"},
		"http remote": {BaseURL: "http://api.example/api/v0", Email: "e", Token: "t"},
		"no email":    {Token: "t"},
		"no token":    {Email: "e"},
		"token nl":    {Email: "e", Token: "t\n"},
		"neg timeout": {Email: "e", Token: "t", Timeout: -1},
		"backoffs":    {Email: "e", Token: "t", MinBackoff: time.Second, MaxBackoff: time.Millisecond},
	}
	if _, err := New(ok); err != nil {
		t.Fatalf("New(valid) = %v", err)
	}
	for name, cfg := range bad {
		_, err := New(cfg)
		if err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
			continue
		}
		if len(cfg.Token) > 1 && strings.Contains(err.Error(), cfg.Token) {
			t.Errorf("%s: error shows the token: %v", name, err)
		}
	}
}
