package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func load(t *testing.T, m map[string]string) (*Config, error) {
	t.Helper()
	if _, ok := m["BETTER_AUTH_SECRET"]; !ok {
		m["BETTER_AUTH_SECRET"] = "s"
	}
	return Load(Map(m), nil)
}

func TestDevLogin(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name     string
		env      map[string]string
		on, loud bool
	}{
		{"fresh loopback server", map[string]string{}, true, false},
		{"loopback URL named", map[string]string{"BETTER_AUTH_URL": "http://127.0.0.1:8080"}, true, false},
		{"behind a same-host proxy", map[string]string{"BETTER_AUTH_URL": "https://astra.example.com"}, false, false},
		{"public listener", map[string]string{"ASTRA_ADDR": "0.0.0.0:8080"}, false, false},
		{"Google configured", map[string]string{"GOOGLE_CLIENT_ID": "i", "GOOGLE_CLIENT_SECRET": "s"}, false, false},
		{"explicitly on", map[string]string{"BETTER_AUTH_URL": "https://astra.example.com", "ASTRA_DEV_LOGIN": "true"}, true, true},
		{"explicitly off", map[string]string{"ASTRA_DEV_LOGIN": "false"}, false, false},
	} {
		cfg, err := load(t, c.env)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if cfg.DevLogin != c.on || cfg.DevLoginExplicit != c.loud {
			t.Errorf("%s: dev login %v (explicit %v), want %v (%v)", c.name, cfg.DevLogin, cfg.DevLoginExplicit, c.on, c.loud)
		}
	}
}

func TestEdgeSettings(t *testing.T) {
	t.Parallel()
	cfg, err := load(t, map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ReadTimeout != 30*time.Second || cfg.IdleTimeout != 60*time.Second || cfg.MaxConnections != 0 || len(cfg.EgressAllow) != 0 {
		t.Errorf("defaults: read %v idle %v max %d egress %v", cfg.ReadTimeout, cfg.IdleTimeout, cfg.MaxConnections, cfg.EgressAllow)
	}
	cfg, err = load(t, map[string]string{
		"BETTER_AUTH_URL": "https://astra.example.com", "ASTRA_ALLOWED_ORIGINS": "https://other.example.com",
		"ASTRA_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1", "ASTRA_READ_TIMEOUT": "5s", "ASTRA_IDLE_TIMEOUT": "2m",
		"ASTRA_MAX_CONNECTIONS": "500", "ASTRA_EGRESS_ALLOW": "10.1.0.0/16, tts.internal, 127.0.0.1",
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.AllowedOrigins, " ") != "https://astra.example.com https://other.example.com http://localhost:8080 http://127.0.0.1:8080 http://[::1]:8080" {
		t.Errorf("origins %q", cfg.AllowedOrigins)
	}
	if cfg.ReadTimeout != 5*time.Second || cfg.IdleTimeout != 2*time.Minute || cfg.MaxConnections != 500 || len(cfg.EgressAllow) != 3 {
		t.Errorf("read %v idle %v max %d egress %v", cfg.ReadTimeout, cfg.IdleTimeout, cfg.MaxConnections, cfg.EgressAllow)
	}

	_, err = load(t, map[string]string{
		"ASTRA_TRUSTED_PROXIES": "10.0.0.0/8,proxy.local", "ASTRA_READ_TIMEOUT": "soon", "ASTRA_IDLE_TIMEOUT": "-1s",
		"ASTRA_MAX_CONNECTIONS": "many", "ASTRA_EGRESS_ALLOW": "http://x/", "ASTRA_ALLOWED_ORIGINS": "app.example.com",
	})
	if err == nil {
		t.Fatal("bad settings accepted")
	}
	lines := strings.Split(err.Error(), "\n")
	for _, want := range []string{"ASTRA_TRUSTED_PROXIES", "ASTRA_READ_TIMEOUT", "ASTRA_IDLE_TIMEOUT", "ASTRA_MAX_CONNECTIONS", "ASTRA_EGRESS_ALLOW", "ASTRA_ALLOWED_ORIGINS"} {
		n := 0
		for _, l := range lines {
			if strings.HasPrefix(l, want+" ") || strings.HasPrefix(l, want+":") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d lines name %s, want 1:\n%s", n, want, err)
		}
	}
}

// A value given by flag is named by its flag; every problem is a
// SettingError (exit code 2); an empty role list is refused.
func TestFlagsNamedInErrors(t *testing.T) {
	t.Parallel()
	flags := Map(map[string]string{"ASTRA_ROLES": "", "ASTRA_ADDR": "nowhere"})
	_, err := LoadFlags(Layered(flags, Map(map[string]string{"ASTRA_LOG_LEVEL": "loud"})), nil,
		map[string]string{"ASTRA_ROLES": "roles", "ASTRA_ADDR": "addr"})
	var se *SettingError
	if !errors.As(err, &se) {
		t.Fatalf("error %v is not a SettingError", err)
	}
	for _, want := range []string{"--roles is empty", `--addr "nowhere" is not host:port`, `ASTRA_LOG_LEVEL "loud"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "ASTRA_ROLES") || strings.Contains(err.Error(), "ASTRA_ADDR") {
		t.Errorf("a flag's value is named by its variable: %q", err)
	}
	cfg, err := Load(Map(map[string]string{"ASTRA_ADMIN_EMAILS": "a@example.com, b@example.com"}), nil)
	if err != nil || len(cfg.AdminEmails) != 2 || cfg.AdminEmails[1] != "b@example.com" {
		t.Errorf("admin emails %v %v", cfg, err)
	}
	_, err = (&Config{MongoURI: "mongodb://x/"}).EnsureSecrets()
	if !errors.As(err, &se) {
		t.Errorf("a missing BETTER_AUTH_SECRET is not a SettingError: %v", err)
	}
}

func TestEngineKeyIsKept(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := &Config{DataDir: dir, JulepBaseURL: "http://julep.example.com"}
	path, gen, err := c.EnsureEngineKey()
	if err != nil || !gen || path != filepath.Join(dir, "engine-key") || len(c.EngineKey) != 64 {
		t.Fatalf("first: %q %v %v %q", path, gen, err, c.EngineKey)
	}
	c2 := &Config{DataDir: dir}
	if _, gen, err := c2.EnsureEngineKey(); err != nil || gen || c2.EngineKey != c.EngineKey {
		t.Errorf("second: %v %v", gen, err)
	}
	c3 := &Config{DataDir: dir, EngineKey: "from-env"}
	if path, _, _ := c3.EnsureEngineKey(); path != "" || c3.EngineKey != "from-env" {
		t.Errorf("from the environment: %q", path)
	}
}

func TestSocketFlush(t *testing.T) {
	t.Parallel()
	cfg, err := load(t, map[string]string{})
	if err != nil || cfg.SocketFlush != 20*time.Millisecond {
		t.Fatalf("default %v, %v; want 20ms", cfg.SocketFlush, err)
	}
	if cfg, err = load(t, map[string]string{"ASTRA_SOCKET_FLUSH": "50ms"}); err != nil || cfg.SocketFlush != 50*time.Millisecond {
		t.Fatalf("50ms: %v, %v", cfg.SocketFlush, err)
	}
	for _, bad := range []string{"2s", "0", "-5ms", "soon"} {
		_, err := load(t, map[string]string{"ASTRA_SOCKET_FLUSH": bad})
		if err == nil || !strings.HasPrefix(err.Error(), "ASTRA_SOCKET_FLUSH ") || strings.Contains(err.Error(), "\n") {
			t.Errorf("ASTRA_SOCKET_FLUSH=%s: %v, want one line naming it", bad, err)
		}
	}
}
