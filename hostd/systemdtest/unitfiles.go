package systemdtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// InstallUnit writes the unit file name (e.g. "fakeagent.service") with
// content and reloads the manager so it sees the new definition.
func (m *Manager) InstallUnit(ctx context.Context, name, content string) error {
	if name == "" || filepath.Base(name) != name {
		return fmt.Errorf("systemdtest: bad unit name %q", name)
	}
	if err := os.WriteFile(filepath.Join(m.UnitDir(), name), []byte(content), 0o644); err != nil {
		return fmt.Errorf("systemdtest: install %s: %w", name, err)
	}
	return m.Reload(ctx)
}

// InstallDropIn writes the drop-in name (e.g. "test.conf") for unit and
// reloads the manager so it applies.
func (m *Manager) InstallDropIn(ctx context.Context, unit, name, content string) error {
	if err := m.writeDropIn(unit, name, content); err != nil {
		return err
	}
	return m.Reload(ctx)
}

func (m *Manager) writeDropIn(unit, name, content string) error {
	if unit == "" || filepath.Base(unit) != unit || name == "" || filepath.Base(name) != name {
		return fmt.Errorf("systemdtest: bad drop-in %q for unit %q", name, unit)
	}
	dir := filepath.Join(m.UnitDir(), unit+".d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("systemdtest: drop-in for %s: %w", unit, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		return fmt.Errorf("systemdtest: drop-in for %s: %w", unit, err)
	}
	return nil
}

// LinkUnit makes the unit file at path (e.g. a package's
// /usr/lib/systemd/system/NAME.service) one of the manager's units, as
// systemctl link does, and reloads the manager. The manager reads the file
// itself, so a new version of it applies at the next reload.
func (m *Manager) LinkUnit(ctx context.Context, path string) error {
	if !filepath.IsAbs(path) {
		return fmt.Errorf("systemdtest: link %s: the unit file's path must be absolute", path)
	}
	link := filepath.Join(m.UnitDir(), filepath.Base(path))
	if err := os.Symlink(path, link); err != nil {
		return fmt.Errorf("systemdtest: link %s: %w", path, err)
	}
	return m.Reload(ctx)
}
