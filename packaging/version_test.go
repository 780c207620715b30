package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestVersionFromGitDescribe walks a repository through the states a release
// can be cut from and checks the version Vault and the packages get.
func TestVersionFromGitDescribe(t *testing.T) {
	script, err := filepath.Abs("version.sh")
	if err != nil {
		t.Fatal(err)
	}
	repo := t.TempDir()
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false"}, args...)...)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+repo)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	version := func() string {
		t.Helper()
		return strings.TrimSpace(runOK(t, repo, script))
	}
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(repo, "f"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	git("init", "-q")
	write("1")
	git("add", "f")
	git("commit", "-q", "-m", "one")
	sha := git("rev-parse", "--short=7", "HEAD")

	steps := []struct {
		name string
		do   func()
		want string
	}{
		{"no tag yet", func() {}, "0.0.0-g" + sha},
		{"no tag, uncommitted change", func() { write("2") }, "0.0.0-g" + sha + ".dirty"},
		{"on a tag", func() { write("1"); git("tag", "v1.2.3") }, "1.2.3"},
		{"on a tag, uncommitted change", func() { write("3") }, "1.2.3-dirty"},
		{"two commits after a tag", func() {
			git("commit", "-q", "-am", "two")
			write("4")
			git("commit", "-q", "-am", "three")
		}, "1.2.3-2.g<sha>"},
	}
	for _, s := range steps {
		s.do()
		want := strings.ReplaceAll(s.want, "<sha>", git("rev-parse", "--short=7", "HEAD"))
		got := version()
		if got != want {
			t.Errorf("%s: version %q, want %q", s.name, got, want)
		}
		if !semver.MatchString(got) {
			t.Errorf("%s: version %q is not semver", s.name, got)
		}
		if regexp.MustCompile(`-.*-`).MatchString(got) {
			t.Errorf("%s: version %q has a second '-', which rpm rejects", s.name, got)
		}
	}
}
