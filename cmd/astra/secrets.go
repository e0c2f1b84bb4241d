package main

import (
	"io/fs"
	"os"
	"regexp"
	"strings"

	"github.com/astra-app/astra/internal/config"
	"github.com/astra-app/astra/tasks"
)

// taskSecrets are the secrets tasks see: every ASTRA_SECRET_<NAME> in the
// environment or .env, plus, looked up by name, each secret the task project
// refers to (so a getenv that cannot be listed still supplies them), and
// TTS_URL from ASTRA_TTS_URL (the responder task speaks only when it is set).
func (e *env) taskSecrets(cfg *config.Config) map[string]string {
	secrets := make(map[string]string, len(cfg.Secrets)+1)
	for k, v := range cfg.Secrets {
		secrets[k] = v
	}
	for _, name := range referencedSecrets(cfg.TasksDir) {
		if _, ok := secrets[name]; !ok {
			if v := e.getenv("ASTRA_SECRET_" + name); v != "" {
				secrets[name] = v
			}
		}
	}
	if _, ok := secrets["TTS_URL"]; !ok && cfg.TTSURL != "" {
		secrets["TTS_URL"] = cfg.TTSURL
	}
	return secrets
}

var secretRef = regexp.MustCompile(`secrets(?:\.get\(\s*['"]([A-Za-z_][A-Za-z0-9_]*)['"]|\[\s*['"]([A-Za-z_][A-Za-z0-9_]*)['"]|\.([A-Za-z_][A-Za-z0-9_]*))`)

// referencedSecrets lists the secret names the task YAML under dir (or the
// built-in copy, when dir does not exist) refers to.
func referencedSecrets(dir string) []string {
	fsys := fs.FS(tasks.FS)
	if st, err := os.Stat(dir); err == nil && st.IsDir() {
		fsys = os.DirFS(dir)
	}
	seen := map[string]bool{}
	var names []string
	_ = fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !(strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
			return nil
		}
		b, err := fs.ReadFile(fsys, path)
		if err != nil {
			return nil
		}
		for _, m := range secretRef.FindAllStringSubmatch(string(b), -1) {
			for _, name := range m[1:] {
				if name != "" && !seen[name] {
					seen[name] = true
					names = append(names, name)
				}
			}
		}
		return nil
	})
	return names
}
