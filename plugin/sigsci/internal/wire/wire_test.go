package wire

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestTimeAcceptsMissingAndFractionalTimestamps(t *testing.T) {
	cases := map[string]time.Time{
		`null`:                             {},
		`""`:                               {},
		`"2024-03-01T10:00:00Z"`:           time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC),
		`"2024-03-01T10:00:00.5+01:00"`:    time.Date(2024, 3, 1, 9, 0, 0, 5e8, time.UTC),
		`"2024-03-01T10:00:00.123456789Z"`: time.Date(2024, 3, 1, 10, 0, 0, 123456789, time.UTC),
	}
	for in, want := range cases {
		var got Time
		if err := json.Unmarshal([]byte(in), &got); err != nil || !got.Equal(want) {
			t.Errorf("%s: got %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{`"yesterday"`, `12345`, `"2024-03-01"`} {
		var got Time
		if err := json.Unmarshal([]byte(in), &got); err == nil {
			t.Errorf("%s: accepted as %v", in, got)
		}
	}
}

func TestKeySetRoundTrip(t *testing.T) {
	primary := true
	in := KeySet{AccessKey: "ak", SecretKey: "sk", Primary: &primary, Created: Time{time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC)}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`"accessKey":"ak"`, `"secretKey":"sk"`, `"primary":true`, `"created":"2024-01-02T03:04:05.000000006Z"`} {
		if !strings.Contains(string(b), field) {
			t.Errorf("%s lacks %s", b, field)
		}
	}
	var out KeySet
	if err := json.Unmarshal(b, &out); err != nil || out.AccessKey != "ak" || *out.Primary != true || !out.Created.Equal(in.Created.Time) {
		t.Errorf("round trip: %+v, %v", out, err)
	}
	// A zero set writes no field at all, so that a dialect that names a
	// field differently writes only its own name.
	if b, _ := json.Marshal(KeySet{}); string(b) != `{}` {
		t.Errorf("zero set = %s", b)
	}
}

func TestKeySetReadsEveryFlagAndTimeName(t *testing.T) {
	in := `{"accessKey":"ak","isPrimary":true,"is_primary":false,"createdAt":"2024-01-02T03:04:05Z","created_at":"2025-01-02T03:04:05Z"}`
	var k KeySet
	if err := json.Unmarshal([]byte(in), &k); err != nil {
		t.Fatal(err)
	}
	if k.Primary != nil || k.IsPrimary == nil || !*k.IsPrimary || k.IsPrimarySnake == nil || *k.IsPrimarySnake {
		t.Errorf("flags: %+v", k)
	}
	if !k.Created.IsZero() || k.CreatedAt.Year() != 2024 || k.CreatedAtSnake.Year() != 2025 {
		t.Errorf("times: %+v", k)
	}
	var wrapped CreatedKeySet
	if err := json.Unmarshal([]byte(`{"data":{"accessKey":"ak","secretKey":"sk"}}`), &wrapped); err != nil ||
		wrapped.Data == nil || wrapped.Data.AccessKey != "ak" || wrapped.AccessKey != "" {
		t.Errorf("wrapped answer: %+v, %v", wrapped, err)
	}
}
