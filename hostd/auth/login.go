package auth

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

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
		return a.loginCert, nil
	case MethodTokenFile:
		if o.TokenFile == "" {
			return nil, errors.New("token_file needs a path")
		}
		return a.loginTokenFile, nil
	case "":
		return nil, errors.New("no login method given (approle, cert or token_file)")
	default:
		return nil, fmt.Errorf("unknown login method %q (want approle, cert or token_file)", o.Method)
	}
}

// loginAppRole reads both files at every login, so a rotated secret-id is
// picked up without a restart.
func (a *Authenticator) loginAppRole(ctx context.Context) (*api.Secret, error) {
	roleID, err := readCredential(a.opts.RoleIDFile, "role_id_file")
	if err != nil {
		return nil, err
	}
	secretID, err := a.readSecretID()
	if err != nil {
		return nil, err
	}
	return a.client.Logical().WriteWithContext(ctx, a.opts.MountPath+"/login",
		map[string]any{"role_id": roleID, "secret_id": secretID})
}

func (a *Authenticator) readSecretID() (string, error) {
	path := a.opts.SecretIDFile
	if !a.opts.RemoveSecretIDFileAfterReading {
		return readCredential(path, "secret_id_file")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	id, err := readCredential(path, "secret_id_file")
	if errors.Is(err, fs.ErrNotExist) && a.lastSecretID != "" {
		return a.lastSecretID, nil // already read and removed
	}
	if err != nil {
		return "", err
	}
	a.lastSecretID = id
	if err := os.Remove(path); err != nil {
		a.opts.Logger.Warn("could not remove secret_id_file after reading", "path", path, "err", err)
	}
	return id, nil
}

// loginCert logs in with the TLS client certificate configured on the client.
func (a *Authenticator) loginCert(ctx context.Context) (*api.Secret, error) {
	body := map[string]any{}
	if a.opts.CertName != "" {
		body["name"] = a.opts.CertName
	}
	return a.client.Logical().WriteWithContext(ctx, a.opts.MountPath+"/login", body)
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
