package host

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/e2e/harness"
)

// The shipped alerting rules in a real Prometheus server: it scrapes the
// host's hostd and evaluates packaging/prometheus/hostd-alerts.yml as
// shipped. Only the intervals are short (1s scrapes and evaluations, where
// an operator has 15s to 1m); no rule is rewritten.

const (
	rolledBackAlert   = "HostdUnitRolledBack"
	prometheusTimeout = 30 * time.Second // to become ready, and to stop
)

// TestRollbackFiresTheAlertInPrometheus breaks the agent's config as the
// rollback story does: before, Prometheus has evaluated the rule and it is
// silent; after the rollback it fires, and it is the only alert firing.
func TestRollbackFiresTheAlertInPrometheus(t *testing.T) {
	bin := prometheusBinary(t)
	h := setUpHost(t, hostOptions{metrics: true})
	prom := startPrometheus(t, bin, h.metricsAddr)

	harness.StepT(t, "Prometheus scrapes hostd and the rule stays silent", func(t *testing.T) {
		var scraped time.Time
		waitFor(t, "Prometheus to have hostd's rollback counter at 0", func() (bool, string) {
			got := prom.query(t, `hostd_unit_rollbacks_total{job="hostd",unit="`+agentUnit+`"}`)
			if len(got) != 1 || got[0].value() != "0" {
				return false, fmt.Sprintf("%+v", got)
			}
			scraped = time.Now()
			return true, ""
		})
		waitFor(t, "Prometheus to evaluate the alerting rules after that scrape", func() (bool, string) {
			rules := prom.alertRules(t)
			r, ok := rules[rolledBackAlert]
			return ok && r.LastEvaluation.After(scraped), fmt.Sprintf("%d rules, %s: %+v", len(rules), rolledBackAlert, r)
		})
		for name, r := range prom.alertRules(t) {
			if r.Health != "ok" {
				t.Errorf("rule %s: health %q: %s", name, r.Health, r.LastError)
			}
			if r.State != "inactive" {
				t.Errorf("rule %s is %s on a healthy host", name, r.State)
			}
		}
	})

	harness.StepT(t, "after a real rollback the alert fires", func(t *testing.T) {
		h.breakTheAgentsConfig(t)
		waitFor(t, "hostd to report a rollback", func() (bool, string) {
			u := h.unit(t, h.snapshot(t))
			return u.Rollbacks >= 1 && u.RolledBack, fmt.Sprintf("unit %+v", u)
		})
		rolledBack := time.Now()

		var fired promAlert
		waitFor(t, rolledBackAlert+" to fire", func() (bool, string) {
			for _, a := range prom.alerts(t) {
				if a.Labels["alertname"] == rolledBackAlert && a.State == "firing" {
					fired = a
					return true, ""
				}
			}
			return false, "not firing yet"
		})
		t.Logf("%s: firing %s after hostd reported the rollback (for: 30s in the rule)", rolledBackAlert, time.Since(rolledBack).Round(time.Millisecond))

		want := map[string]string{"alertname": rolledBackAlert, "job": "hostd", "instance": h.metricsAddr, "unit": agentUnit, "severity": "warning"}
		for k, v := range want {
			if fired.Labels[k] != v {
				t.Errorf("alert label %s=%q, want %q (labels %v)", k, fired.Labels[k], v, fired.Labels)
			}
		}
		if !strings.Contains(fired.Annotations["summary"], agentUnit) || !strings.HasSuffix(fired.Annotations["runbook_url"], "#unit-rolled-back") {
			t.Errorf("alert annotations %v", fired.Annotations)
		}
		// Prometheus saw the counter go from 0 to 1: the rule's increase()
		// branch holds, not only its branch for a hostd started moments ago.
		if got := prom.query(t, `increase(hostd_unit_rollbacks_total{unit="`+agentUnit+`"}[15m]) > 0`); len(got) != 1 {
			t.Errorf("increase(hostd_unit_rollbacks_total[15m]) > 0: %+v, want one series", got)
		}
		for _, a := range prom.alerts(t) {
			if a.State == "firing" && a.Labels["alertname"] != rolledBackAlert {
				t.Errorf("%s fires too: %v", a.Labels["alertname"], a.Labels)
			}
		}
		harness.KeepOutput("Prometheus's alerts of "+t.Name(), prom.raw(t, "/api/v1/alerts", nil))
		h.checkNoSecrets(t)
	})
}

// prometheusBinary returns the path of the prometheus server (Debian's
// prometheus package), or stops the test: skipped here, failed under CI.
func prometheusBinary(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		harness.Unavailable(t, "no prometheus server (Debian package prometheus): %v", err)
	}
	return bin
}

// promServer is a Prometheus server the test started, with its HTTP API.
type promServer struct {
	url     string // http://127.0.0.1:<port>
	logPath string
	client  *http.Client
}

// startPrometheus runs bin with the shipped alerting rules, scraping target
// as the job hostd, and stops it when t ends.
func startPrometheus(t *testing.T, bin, target string) *promServer {
	t.Helper()
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	config := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(config, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: hostd
    static_configs:
      - targets: [%q]
`, filepath.Join(root, "packaging", "prometheus", "hostd-alerts.yml"), target)), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &promServer{logPath: filepath.Join(dir, "prometheus.log"), client: &http.Client{Timeout: 5 * time.Second}}
	addr := harness.FreeLoopbackAddr(t)
	p.url = "http://" + addr
	cmd := exec.Command(bin, "--config.file="+config, "--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr)
	cmd.Dir = dir
	p.waitReady(t, startBackground(t, t, cmd, p.logPath, prometheusTimeout).Exited())
	t.Logf("Prometheus ready at %s, scraping %s", p.url, target)
	return p
}

// waitReady polls /-/ready until the server answers 200, failing the test
// if it exits first (its port taken, a bad rules file) or takes too long.
func (p *promServer) waitReady(t *testing.T, exited <-chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), prometheusTimeout)
	defer cancel()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.url+"/-/ready", nil)
		if resp, err := p.client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-exited:
			t.Fatalf("prometheus exited before it was ready:\n%s", readFile(p.logPath))
		case <-ctx.Done():
			t.Fatalf("prometheus not ready within %s:\n%s", prometheusTimeout, readFile(p.logPath))
		case <-tick.C:
		}
	}
}

// promAlert is one alert of /api/v1/alerts.
type promAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"` // pending or firing
}

// promRule is one alerting rule of /api/v1/rules.
type promRule struct {
	Name           string    `json:"name"`
	State          string    `json:"state"` // inactive, pending or firing
	Health         string    `json:"health"`
	LastError      string    `json:"lastError"`
	LastEvaluation time.Time `json:"lastEvaluation"`
}

// promSample is one series of an instant query's vector.
type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"` // [unix time, "value"]
}

func (s promSample) value() string {
	v, _ := s.Value[1].(string)
	return v
}

func (p *promServer) alerts(t *testing.T) []promAlert {
	t.Helper()
	var data struct {
		Alerts []promAlert `json:"alerts"`
	}
	p.get(t, "/api/v1/alerts", nil, &data)
	return data.Alerts
}

// alertRules returns the loaded alerting rules by name.
func (p *promServer) alertRules(t *testing.T) map[string]promRule {
	t.Helper()
	var data struct {
		Groups []struct {
			Rules []promRule `json:"rules"`
		} `json:"groups"`
	}
	p.get(t, "/api/v1/rules", url.Values{"type": {"alert"}}, &data)
	rules := map[string]promRule{}
	for _, g := range data.Groups {
		for _, r := range g.Rules {
			rules[r.Name] = r
		}
	}
	return rules
}

// query evaluates expr now and returns its instant vector.
func (p *promServer) query(t *testing.T, expr string) []promSample {
	t.Helper()
	var data struct {
		ResultType string       `json:"resultType"`
		Result     []promSample `json:"result"`
	}
	p.get(t, "/api/v1/query", url.Values{"query": {expr}}, &data)
	if data.ResultType != "vector" {
		t.Fatalf("query %s: result type %q, want vector", expr, data.ResultType)
	}
	return data.Result
}

// get decodes the data of a successful API answer into v.
func (p *promServer) get(t *testing.T, path string, query url.Values, v any) {
	t.Helper()
	var answer struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
		Error  string          `json:"error"`
	}
	body := p.raw(t, path, query)
	if err := json.Unmarshal([]byte(body), &answer); err != nil || answer.Status != "success" {
		t.Fatalf("prometheus %s: %v %s %s\n%s", path, err, answer.Status, answer.Error, body)
	}
	if err := json.Unmarshal(answer.Data, v); err != nil {
		t.Fatalf("prometheus %s: %v\n%s", path, err, body)
	}
}

// raw returns the body of an API answer.
func (p *promServer) raw(t *testing.T, path string, query url.Values) string {
	t.Helper()
	u := p.url + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		t.Fatalf("prometheus %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("prometheus %s: %v", path, err)
	}
	return string(body)
}
