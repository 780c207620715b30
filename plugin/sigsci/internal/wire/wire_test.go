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
	if b, _ := json.Marshal(KeySet{}); !strings.Contains(string(b), `"created":null`) || strings.Contains(string(b), "primary") {
		t.Errorf("zero set = %s", b)
	}
}
