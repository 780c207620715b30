package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/sigsci-keys/sigsci-keys/hostd/vaulttest"
)

// issuer signs workload-identity JWTs (ES256, compact JWS) with a key Vault's
// jwt method trusts.
type issuer struct{ key *ecdsa.PrivateKey }

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &issuer{key: key}
}

func (i *issuer) publicKeyPEM(t *testing.T) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&i.key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// sign returns a JWT for the host with the given extra claims.
func (i *issuer) sign(t *testing.T, claims map[string]any) string {
	t.Helper()
	now := time.Now()
	all := map[string]any{"iss": "https://identity.example", "sub": "waf-host", "aud": "hostd",
		"iat": now.Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(10 * time.Minute).Unix()}
	for k, v := range claims {
		all[k] = v
	}
	segment := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	signed := segment(map[string]string{"alg": "ES256", "typ": "JWT"}) + "." + segment(all)
	digest := sha256.Sum256([]byte(signed))
	r, s, err := ecdsa.Sign(rand.Reader, i.key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64) // JWS ES256: r and s, 32 bytes each
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// jwtVault enables the jwt method at mount, trusting the issuer's key, with
// a role waf that maps the claim "login" into the token's metadata.
func jwtVault(t *testing.T, mount string, iss *issuer) *vaulttest.Server {
	t.Helper()
	v := vaulttest.Start(t)
	if err := v.Client().Sys().EnableAuthWithOptions(mount, &api.EnableAuthOptions{Type: "jwt"}); err != nil {
		t.Fatal(err)
	}
	v.Write("auth/"+mount+"/config", map[string]any{"jwt_validation_pubkeys": []string{iss.publicKeyPEM(t)}, "bound_issuer": "https://identity.example"})
	v.Write("auth/"+mount+"/role/waf", map[string]any{
		"role_type": "jwt", "user_claim": "sub", "bound_subject": "waf-host", "bound_audiences": []string{"hostd"},
		"claim_mappings": map[string]string{"login": "login"}, "token_ttl": "10m", "token_max_ttl": "1h",
	})
	return v
}

// A host with a workload identity: the JWT file is replaced by its issuer,
// and every login reads the file as it is now.
func TestJWTLoginReadsTheFileAtEveryLogin(t *testing.T) {
	iss := newIssuer(t)
	v := jwtVault(t, "workload", iss)
	h := newHarness(v, t.TempDir())
	h.writeFile(t, "jwt", iss.sign(t, map[string]any{"login": "first"}))
	opts := h.options(MethodJWT)
	opts.Role, opts.JWTFile, opts.MountPath = "waf", filepath.Join(h.dir, "jwt"), "workload"
	a := h.start(t, opts)
	waitReady(t, a, 10*time.Second)
	first := h.seeToken(t)
	if got := tokenMeta(t, v, first)["login"]; got != "first" {
		t.Fatalf("token metadata login=%v, want first", got)
	}
	login, next := h.events.WaitFor(t, 0, time.Second, "login", isLogin(true))
	if login.Method != MethodJWT || !login.Renewable {
		t.Fatalf("login event %+v, want a renewable jwt login", login)
	}

	h.writeFile(t, "jwt", iss.sign(t, map[string]any{"login": "second"}))
	a.TokenRejected(first)
	h.events.WaitFor(t, next, 5*time.Second, "login with the replaced JWT", isLogin(true))
	if got := tokenMeta(t, v, h.seeToken(t))["login"]; got != "second" {
		t.Fatalf("token metadata login=%v after replacing the file, want second", got)
	}
}

func TestJWTFromAnotherIssuerIsRefused(t *testing.T) {
	v := jwtVault(t, "jwt", newIssuer(t))
	h := newHarness(v, t.TempDir())
	forged := newIssuer(t).sign(t, nil)
	h.writeFile(t, "jwt", forged)
	opts := h.options(MethodJWT)
	opts.Role, opts.JWTFile = "waf", filepath.Join(h.dir, "jwt") // default mount: jwt
	h.start(t, opts)
	failed, _ := h.events.WaitFor(t, 0, 10*time.Second, "refused login", isLogin(false))
	if !strings.Contains(failed.Err, "vault answered 400") || strings.Contains(failed.Err, forged) {
		t.Fatalf("login failure %q, want Vault's refusal without the JWT", failed.Err)
	}
	if strings.Contains(h.logs.String(), forged) {
		t.Fatal("the JWT appeared in the logs")
	}
}
