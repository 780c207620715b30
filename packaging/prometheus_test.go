package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The Prometheus rules in prometheus/: the real promtool checks them and
// runs their unit tests (each *_test.yml beside the file it tests), and each
// alert carries what a Prometheus user expects of it.

const rulesDir = "prometheus"

// runbookBase is where the alerts' runbook_url point: README.md's
// troubleshooting lines, each with an anchor of its own.
const runbookBase = "https://github.com/sigsci-keys/sigsci-keys/blob/main/README.md#"

// requirePromtool returns promtool's path. Without it the test is skipped,
// except under CI, which must run the rule tests.
func requirePromtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err == nil {
		return path
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("promtool not found: install Debian's prometheus package; CI runs the rule tests")
	}
	t.Skip("skipping: promtool not found (apt-get install prometheus); under CI=true this fails")
	return ""
}

// ruleFiles returns the rules files of prometheus/ and their unit tests.
func ruleFiles(t *testing.T) (rules, tests []string) {
	t.Helper()
	all, err := filepath.Glob(filepath.Join(rulesDir, "*.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range all {
		if strings.HasSuffix(f, "_test.yml") {
			tests = append(tests, f)
		} else {
			rules = append(rules, f)
		}
	}
	if len(rules) < 2 {
		t.Fatalf("want the alerting and the recording rules in %s, found %v", rulesDir, rules)
	}
	return rules, tests
}

func TestPromtoolChecksTheRules(t *testing.T) {
	promtool := requirePromtool(t)
	rules, _ := ruleFiles(t)
	out := runOK(t, "", promtool, append([]string{"check", "rules"}, rules...)...)
	t.Logf("%s", out)
}

func TestPromtoolRunsTheRuleUnitTests(t *testing.T) {
	promtool := requirePromtool(t)
	rules, tests := ruleFiles(t)
	for _, r := range rules {
		if want := strings.TrimSuffix(r, ".yml") + "_test.yml"; !slices.Contains(tests, want) {
			t.Errorf("%s has no unit tests (%s)", r, want)
		}
	}
	for _, f := range tests {
		t.Run(filepath.Base(f), func(t *testing.T) {
			runOK(t, rulesDir, promtool, "test", "rules", filepath.Base(f))
		})
	}
}

// ruleFile is the part of a Prometheus rules file these checks read.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

// rule is an alerting rule (Alert) or a recording rule (Record).
type rule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// rulesOfKind reads the rules file name (in rulesDir), whose rules must all
// be alerts (alerts true) or all recording rules, and returns them. A rule
// of the other kind marks the test failed; a file with none of the kind
// fails it.
func rulesOfKind(t *testing.T, name string, alerts bool) []rule {
	t.Helper()
	var f ruleFile
	readYAML(t, filepath.Join(rulesDir, name), &f)
	var rules []rule
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			switch {
			case alerts && r.Alert == "":
				t.Errorf("group %s: recording rule %q in the alerts file", g.Name, r.Record)
			case !alerts && r.Record == "":
				t.Errorf("group %s: alert %q in the recording rules file", g.Name, r.Alert)
			default:
				rules = append(rules, r)
			}
		}
	}
	switch {
	case len(rules) > 0:
	case alerts:
		t.Fatal("no alerts found")
	default:
		t.Fatal("no recording rules found")
	}
	return rules
}

// ruleTestFile is the part of a promtool test file these checks read.
type ruleTestFile struct {
	Tests []struct {
		AlertRuleTest []struct {
			Alertname string `yaml:"alertname"`
			ExpAlerts []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

var (
	alertName  = regexp.MustCompile(`^Hostd[A-Z][A-Za-z]+$`)
	recordName = regexp.MustCompile(`^[a-z_]+:hostd_[a-z_]+:[a-z0-9_]+$`)
	anchorID   = regexp.MustCompile(`<a id="([a-z0-9-]+)"></a>`)
)

// TestAlertsFollowPrometheusConventions checks every alert's name, for,
// severity and annotations, that its runbook line exists in README.md, and
// that its unit tests see it both fire and stay silent.
func TestAlertsFollowPrometheusConventions(t *testing.T) {
	alerts := rulesOfKind(t, "hostd-alerts.yml", true)
	var tests ruleTestFile
	readYAML(t, filepath.Join(rulesDir, "hostd-alerts_test.yml"), &tests)
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, tg := range tests.Tests {
		for _, c := range tg.AlertRuleTest {
			if len(c.ExpAlerts) > 0 {
				fires[c.Alertname] = true
			} else {
				silent[c.Alertname] = true
			}
		}
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, m := range anchorID.FindAllStringSubmatch(string(readme), -1) {
		anchors[m[1]] = true
	}

	for _, r := range alerts {
		if !alertName.MatchString(r.Alert) {
			t.Errorf("%s: want a CamelCase name starting with Hostd", r.Alert)
		}
		if r.For == "" {
			t.Errorf("%s: no for:", r.Alert)
		}
		if s := r.Labels["severity"]; s != "critical" && s != "warning" {
			t.Errorf("%s: severity %q, want critical or warning", r.Alert, s)
		}
		for _, a := range []string{"summary", "description", "runbook_url"} {
			if r.Annotations[a] == "" {
				t.Errorf("%s: no %s annotation", r.Alert, a)
			}
		}
		anchor, ok := strings.CutPrefix(r.Annotations["runbook_url"], runbookBase)
		if !ok || !anchors[anchor] {
			t.Errorf("%s: runbook_url %q is not one of README.md's troubleshooting anchors (%s<id>)", r.Alert, r.Annotations["runbook_url"], runbookBase)
		}
		if !fires[r.Alert] || !silent[r.Alert] {
			t.Errorf("%s: its unit tests must see it fire (%v) and stay silent (%v)", r.Alert, fires[r.Alert], silent[r.Alert])
		}
	}
}

func TestRecordingRulesFollowPrometheusConventions(t *testing.T) {
	for _, r := range rulesOfKind(t, "hostd-records.yml", false) {
		if !recordName.MatchString(r.Record) {
			t.Errorf("recording rule %s: want level:hostd_metric:operations", r.Record)
		}
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
