package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// withHostname makes this machine's host name name (or err) for the test.
func withHostname(t *testing.T, name string, err error) {
	t.Helper()
	old := hostname
	hostname = func() (string, error) { return name, err }
	t.Cleanup(func() { hostname = old })
}

const oneTemplate = "template {\n  contents = \"x\"\n  destination = \"/a\"\n}\n"

func TestReportDefaultsToThisMachinesHostName(t *testing.T) {
	withHostname(t, "web-1.example", nil)
	cfg := mustParse(t, "hostd.hcl", base+oneTemplate)
	if want := (Report{Enabled: true, Host: "web-1.example", Interval: 10 * time.Minute}); cfg.Report != want {
		t.Fatalf("Report = %+v, want %+v", cfg.Report, want)
	}
}

func TestReportBlock(t *testing.T) {
	withHostname(t, "ignored", nil)
	cfg := mustParse(t, "hostd.hcl", base+oneTemplate+"report {\n  host = \"waf_7.dc-2\"\n  interval = \"2m\"\n}\n")
	if want := (Report{Enabled: true, Host: "waf_7.dc-2", Interval: 2 * time.Minute}); cfg.Report != want {
		t.Fatalf("Report = %+v, want %+v", cfg.Report, want)
	}
	off := mustParse(t, "hostd.hcl", base+oneTemplate+"report {\n  enabled = false\n}\n")
	if off.Report.Enabled {
		t.Fatalf("Report = %+v, want off", off.Report)
	}
}

func TestReportProblems(t *testing.T) {
	const at = baseLines + 5 // the report block's first line
	cases := []struct {
		name, block string
		line        int
		want        []string
	}{
		{"host with a space", "report {\n  host = \"web 1\"\n}\n", at + 1, []string{"Invalid host", `"web 1"`, "1 to 253 characters"}},
		{"empty host", "report {\n  host = \"\"\n}\n", at + 1, []string{"Invalid host"}},
		{"host too long", "report {\n  host = \"" + strings.Repeat("h", 254) + "\"\n}\n", at + 1, []string{"Invalid host"}},
		{"interval not a duration", "report {\n  interval = \"often\"\n}\n", at + 1, []string{"Invalid duration", "interval"}},
		{"interval too short", "report {\n  interval = \"1s\"\n}\n", at + 1, []string{"Duration too short", "at least 5s"}},
		{"two report blocks", "report {}\nreport {}\n", at + 1, []string{"Duplicate report block"}},
	}
	withHostname(t, "web-1", nil)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("hostd.hcl", []byte(base+oneTemplate+tc.block))
			assertOneProblem(t, err, "hostd.hcl", tc.line, tc.want...)
		})
	}
}

func TestReportNeedsAHostNameWhenTheMachinesIsUnusable(t *testing.T) {
	withHostname(t, "web 1 (lab)", nil)
	_, err := Parse("hostd.hcl", []byte(base+oneTemplate))
	assertOneProblem(t, err, "hostd.hcl", 1, "No host name for the report", `"web 1 (lab)"`, `report { host = "web-1" }`)

	withHostname(t, "", errors.New("uname failed"))
	_, err = Parse("hostd.hcl", []byte(base+oneTemplate+"report {\n  interval = \"1m\"\n}\n"))
	assertOneProblem(t, err, "hostd.hcl", baseLines+5, "No host name for the report", "uname failed")

	// Off, or with a host of its own, it needs no host name of the machine.
	mustParse(t, "hostd.hcl", base+oneTemplate+"report {\n  enabled = false\n}\n")
	mustParse(t, "hostd.hcl", base+oneTemplate+"report {\n  host = \"web-1\"\n}\n")
}

func TestReportIntervalAsLongAsStalenessWarns(t *testing.T) {
	withHostname(t, "web-1", nil)
	cfg := mustParse(t, "hostd.hcl", base+oneTemplate+"report {\n  interval = \"30m\"\n}\n")
	if len(cfg.Warnings) != 1 || cfg.Warnings[0].Line != baseLines+6 || !strings.Contains(cfg.Warnings[0].String(), "stale") {
		t.Fatalf("warnings = %v", cfg.Warnings)
	}
}
