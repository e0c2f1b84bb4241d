package config

import (
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
