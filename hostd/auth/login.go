package auth

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/vault/api"
)

// loginFunc picks the login for the configured method and checks its inputs.
func (a *Authenticator) loginFunc() (func(context.Context) (*api.Secret, error), error) {
	o := a.opts
	switch o.Method {
	case MethodAppRole:
		if o.RoleIDFile == "" || o.SecretIDFile == "" {
			return nil, errors.New("approle needs role_id_file and secret_id_file")
		}
		return a.loginAppRole, nil
	case MethodCert:
		if o.TLS == nil || o.TLS.ClientCert == "" || o.TLS.ClientKey == "" {
			return nil, errors.New("cert needs the client certificate and key files")
		}
		return a.loginCert, nil
	case MethodJWT:
		if o.Role == "" || o.JWTFile == "" {
			return nil, errors.New("jwt needs a role and the path of the JWT file")
		}
		return a.loginJWT, nil
	case MethodTokenFile:
		if o.TokenFile == "" {
			return nil, errors.New("token_file needs a path")
		}
		return a.loginTokenFile, nil
	case "":
		return nil, errors.New("no login method given (approle, cert, jwt or token_file)")
	default:
		return nil, fmt.Errorf("unknown login method %q (want approle, cert, jwt or token_file)", o.Method)
	}
}

// loginAppRole reads both files at every login, so a rotated secret-id is
// picked up without a restart.
func (a *Authenticator) loginAppRole(ctx context.Context) (*api.Secret, error) {
	roleID, err := readCredential(a.opts.RoleIDFile, "role_id_file")
	if err != nil {
		return nil, err
	}
	secretID, err := a.readSecretID(ctx)
	if err != nil {
		return nil, err
	}
	return a.client.Logical().WriteWithContext(ctx, a.opts.MountPath+"/login",
		map[string]any{"role_id": roleID, "secret_id": secretID})
}

// loginCert logs in with the client certificate on a connection of its own,
// whose TLS settings are read from their files now: a renewed short-lived
// certificate (or a new CA) is used at the next login without a restart, and
// no pooled connection made with the old certificate is reused.
func (a *Authenticator) loginCert(ctx context.Context) (*api.Secret, error) {
	client, transport, err := a.clientWithFreshTLS()
	if err != nil {
		return nil, err
	}
	defer transport.CloseIdleConnections()
	body := map[string]any{}
	if a.opts.CertName != "" {
		body["name"] = a.opts.CertName
	}
	return client.Logical().WriteWithContext(ctx, a.opts.MountPath+"/login", body)
}

// clientWithFreshTLS returns a copy of the client with a transport of its own
// that keeps no connection (so the login handshakes anew) and the TLS files
// read again. A clone of the client's transport would not do: with HTTP/2
// set up on it, a clone hands its requests to the original's pooled
// connection, made with the old certificate.
func (a *Authenticator) clientWithFreshTLS() (*api.Client, *http.Transport, error) {
	cfg := a.client.CloneConfig()
	transport := cleanhttp.DefaultTransport()
	transport.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if base, ok := cfg.HttpClient.Transport.(*http.Transport); ok && base.TLSClientConfig != nil {
		transport.TLSClientConfig = base.TLSClientConfig.Clone()
		transport.TLSClientConfig.NextProtos = nil // the new transport negotiates for itself
	}
	cfg.HttpClient.Transport = transport
	files := *a.opts.TLS
	if err := cfg.ConfigureTLS(&files); err != nil {
		return nil, nil, fmt.Errorf("read TLS files for cert login: %w", err)
	}
	client, err := api.NewClient(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("cert login client: %w", err)
	}
	client.SetHeaders(a.client.Headers()) // namespace and request headers, no token
	client.ClearToken()
	return client, transport, nil
}

// loginJWT reads the JWT at every login: a workload identity's token is
// short-lived and replaced on disk by whoever issues it.
func (a *Authenticator) loginJWT(ctx context.Context) (*api.Secret, error) {
	jwt, err := readCredential(a.opts.JWTFile, "jwt file")
	if err != nil {
		return nil, err
	}
	return a.client.Logical().WriteWithContext(ctx, a.opts.MountPath+"/login",
		map[string]any{"role": a.opts.Role, "jwt": jwt})
}

// loginTokenFile reads a token from a file and asks Vault for its TTL and
// whether it can be renewed.
func (a *Authenticator) loginTokenFile(ctx context.Context) (*api.Secret, error) {
	token, err := readCredential(a.opts.TokenFile, "token file")
	if err != nil {
		return nil, err
	}
	self, err := a.lookupSelf(ctx, token)
	if err != nil {
		return nil, err
	}
	ttl, err := self.TokenTTL()
	if err != nil {
		return nil, fmt.Errorf("token lookup: %w", err)
	}
	renewable, err := self.TokenIsRenewable()
	if err != nil {
		return nil, fmt.Errorf("token lookup: %w", err)
	}
	return &api.Secret{Auth: &api.SecretAuth{
		ClientToken:   token,
		Renewable:     renewable,
		LeaseDuration: int(ttl.Seconds()),
	}}, nil
}

func (a *Authenticator) lookupSelf(ctx context.Context, token string) (*api.Secret, error) {
	c, err := a.client.CloneWithHeaders()
	if err != nil {
		return nil, fmt.Errorf("token lookup: %w", err)
	}
	c.SetToken(token)
	s, err := c.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, errors.New("token lookup: empty answer from vault")
	}
	return s, nil
}

// readCredential reads a one-line credential file. Its content never appears
// in an error.
func readCredential(path, what string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", what, err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("%s %s is empty", what, path)
	}
	return v, nil
}
