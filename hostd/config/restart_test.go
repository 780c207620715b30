package config

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func writeExecutable(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "check-agent")
	if err := os.WriteFile(path, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestParseRestartHealthCheck(t *testing.T) {
	check := writeExecutable(t, t.TempDir())
	cfg := mustParse(t, "hostd.hcl", base+`restart {
  job_timeout          = "4m"
  stable_for           = "8s"
  retry_rejected_after = "30m"
  check {
    command = ["`+check+`", "--quick", "--unit=sigsci-agent"]
    timeout = "20s"
  }
}
`)
	r := cfg.Restart
	if r.JobTimeout != 4*time.Minute || r.StableFor != 8*time.Second || r.RetryRejectedAfter != 30*time.Minute {
		t.Errorf("Restart = %+v", r)
	}
	if r.Check == nil || !slices.Equal(r.Check.Command, []string{check, "--quick", "--unit=sigsci-agent"}) || r.Check.Timeout != 20*time.Second {
		t.Errorf("Check = %+v", r.Check)
	}

	cfg = mustParse(t, "hostd.hcl", base+"restart {\n  check {\n    command = [\""+check+"\"]\n  }\n}\n")
	if c := cfg.Restart.Check; c == nil || c.Timeout != 10*time.Second {
		t.Errorf("check timeout default: %+v, want 10s", c)
	}
}

func TestParseRestartProblems(t *testing.T) {
	dir := t.TempDir()
	check := writeExecutable(t, dir)
	notExecutable := writeTemplateSource(t, dir)
	after := func(n int) int { return baseLines + n }
	restart := func(body string) string { return base + "restart {\n" + body + "\n}\n" }
	checkBlock := func(lines string) string { return restart("  check {\n" + lines + "\n  }") }

	cases := []struct {
		name string
		text string
		line int
		want []string
	}{
		{"stable_for zero", restart(`  stable_for = "0s"`), after(2), []string{"Duration too short", "stable_for must be at least 1s"}},
		{"stable_for too long", restart(`  stable_for = "1h"`), after(2), []string{"Duration too long", "at most 10m"}},
		{"retry_rejected_after too short", restart(`  retry_rejected_after = "10s"`), after(2), []string{"Duration too short", "retry_rejected_after must be at least 1m"}},
		{"retry_rejected_after not a duration", restart(`  retry_rejected_after = "later"`), after(2), []string{"Invalid duration", "retry_rejected_after"}},
		{"check without command", checkBlock(`    timeout = "5s"`), after(2), []string{"Missing command", "the check block needs command"}},
		{"check with an empty command", checkBlock(`    command = []`), after(3), []string{"Empty check command", "without a shell"}},
		{"check command is a string", checkBlock(`    command = "/usr/local/bin/check-agent --quick"`), after(3), []string{"list of string required"}},
		{"check command relative", checkBlock(`    command = ["check-agent"]`), after(3), []string{"Path not absolute", "check command's program"}},
		{"check command missing", checkBlock(`    command = ["` + filepath.Join(dir, "nope") + `"]`), after(3), []string{"Unusable check command", "no such file"}},
		{"check command not executable", checkBlock(`    command = ["` + notExecutable + `"]`), after(3), []string{"Unusable check command", "not executable"}},
		{"check command is a directory", checkBlock(`    command = ["` + dir + `"]`), after(3), []string{"Unusable check command", "not a regular file"}},
		{"check timeout zero", checkBlock(`    command = ["` + check + `"]` + "\n" + `    timeout = "0s"`), after(4), []string{"Duration too short", "timeout must be at least 1s"}},
		{"two check blocks", restart("  check {\n    command = [\"" + check + "\"]\n  }\n  check {\n    command = [\"" + check + "\"]\n  }"), after(5), []string{"Duplicate check block"}},
		{"unknown check attribute", checkBlock(`    command = ["` + check + `"]` + "\n" + `    shell = true`), after(4), []string{"Unsupported argument", `"shell"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("hostd.hcl", []byte(tc.text))
			assertOneProblem(t, err, "hostd.hcl", tc.line, tc.want...)
		})
	}
}
