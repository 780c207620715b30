package auth

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/sigsci-keys/sigsci-keys/hostd/internal/vaulterr"
)

// readSecretID returns the secret-id for this login: what the secret-id file
// holds or, with SecretIDResponseWrappingPath, the secret-id unwrapped from
// the response-wrapping token it holds. A wrapping token works once, so the
// secret-id it gave is kept and reused while the file still holds that token
// (or is gone); a new token in the file is unwrapped at the next login.
func (a *Authenticator) readSecretID(ctx context.Context) (string, error) {
	path, wrapped := a.opts.SecretIDFile, a.opts.SecretIDResponseWrappingPath != ""
	a.secretIDMu.Lock()
	defer a.secretIDMu.Unlock()
	raw, err := readCredential(path, "secret_id_file")
	if errors.Is(err, fs.ErrNotExist) && a.lastSecretID != "" && (wrapped || a.opts.RemoveSecretIDFileAfterReading) {
		return a.lastSecretID, nil // already read (and removed)
	}
	if err != nil {
		return "", err
	}
	id := raw
	if wrapped {
		if raw == a.lastWrapping {
			return a.lastSecretID, nil
		}
		if id, err = a.unwrapSecretID(ctx, raw); err != nil {
			return "", err
		}
		a.lastWrapping = raw
	}
	a.lastSecretID = id
	if a.opts.RemoveSecretIDFileAfterReading {
		if err := os.Remove(path); err != nil {
			a.opts.Logger.Warn("could not remove secret_id_file after reading", "path", path, "err", err)
		}
	}
	return id, nil
}

// unwrapSecretID checks that the wrapping token was created at the
// configured path (so a token wrapping anything else, from anyone, is not
// taken for a secret-id) and unwraps it. Neither token nor secret-id appears
// in an error.
func (a *Authenticator) unwrapSecretID(ctx context.Context, wrappingToken string) (string, error) {
	client, err := a.client.CloneWithHeaders()
	if err != nil {
		return "", fmt.Errorf("unwrap secret-id: %w", err)
	}
	client.ClearToken()
	info, err := client.Logical().WriteWithContext(ctx, "sys/wrapping/lookup", map[string]any{"token": wrappingToken})
	if err != nil {
		return "", fmt.Errorf("look up the wrapping token in secret_id_file: %s", vaulterr.Describe(err))
	}
	if info == nil || info.Data == nil {
		return "", errors.New("look up the wrapping token in secret_id_file: empty answer from vault")
	}
	created, _ := info.Data["creation_path"].(string)
	want := strings.Trim(a.opts.SecretIDResponseWrappingPath, "/")
	if strings.Trim(created, "/") != want {
		return "", fmt.Errorf("the wrapping token in secret_id_file was created at %q, not at secret_id_response_wrapping_path %q; it is not unwrapped", created, want)
	}
	secret, err := client.Logical().UnwrapWithContext(ctx, wrappingToken)
	if err != nil {
		return "", fmt.Errorf("unwrap the secret-id: %s", vaulterr.Describe(err))
	}
	if secret == nil {
		return "", errors.New("unwrap the secret-id: empty answer from vault")
	}
	id, _ := secret.Data["secret_id"].(string)
	if id == "" {
		return "", errors.New("the unwrapped answer holds no secret_id")
	}
	return id, nil
}
