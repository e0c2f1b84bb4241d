package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"
)

// TestServeEdge drives the real server the way the attacker did: a rebound
// Host at dev login, a trickled body, idle keep-alives, a forged
// X-Forwarded-For.
func TestServeEdge(t *testing.T) {
	t.Parallel()
	inst := startAstra(t, map[string]string{"ASTRA_READ_TIMEOUT": "300ms", "ASTRA_IDLE_TIMEOUT": "300ms"})
	addr := strings.TrimPrefix(inst.url, "http://")
	_, port, _ := net.SplitHostPort(addr)

	devLogin := func(header ...string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, inst.url+"/api/auth/dev-login", strings.NewReader(`{"email":"alice@example.com"}`))
		req.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(header); i += 2 {
			if header[i] == "Host" {
				req.Host = header[i+1]
			} else {
				req.Header.Set(header[i], header[i+1])
			}
		}
		jar, _ := cookiejar.New(nil)
		res, err := (&http.Client{Jar: jar, Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}

	t.Run("DNS rebinding at dev login", func(t *testing.T) {
		evil := "attacker.example:" + port
		if code, body := devLogin("Host", evil, "Origin", "http://"+evil); code != http.StatusMisdirectedRequest || !strings.Contains(body, evil) {
			t.Errorf("rebound dev login: %d %s, want 421 naming %s", code, body, evil)
		}
		if code, body := devLogin("Origin", inst.url); code != http.StatusOK {
			t.Errorf("dev login from the server's own page: %d %s", code, body)
		}
	})

	t.Run("X-Forwarded-For from an untrusted peer", func(t *testing.T) {
		code, body := devLogin("Origin", inst.url, "X-Forwarded-For", "203.0.113.66")
		var v struct {
			Session struct {
				IPAddress string `json:"ipAddress"`
			} `json:"session"`
		}
		_ = json.Unmarshal([]byte(body), &v)
		if code != http.StatusOK || v.Session.IPAddress != "127.0.0.1" {
			t.Errorf("session IP %q (%d %s), want the peer 127.0.0.1", v.Session.IPAddress, code, body)
		}
	})

	t.Run("slow body", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, _ = io.WriteString(c, "POST /api/responder/messages HTTP/1.1\r\nHost: "+addr+"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n")
		defer trickle(c)()
		eventuallyClosed(t, c)
	})

	t.Run("idle keep-alive", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, _ = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: "+addr+"\r\n\r\n")
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("healthz: %v %v", res, err)
		}
		res.Body.Close()
		eventuallyClosed(t, c)
	})
}

// TestServeTrustedProxy: behind a proxy named in ASTRA_TRUSTED_PROXIES the
// forwarded client is recorded on the session.
func TestServeTrustedProxy(t *testing.T) {
	t.Parallel()
	inst := startAstra(t, map[string]string{"ASTRA_TRUSTED_PROXIES": "127.0.0.1, ::1"})
	req, _ := http.NewRequest(http.MethodPost, inst.url+"/api/auth/dev-login", strings.NewReader(`{"email":"bob@example.com"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", inst.url)
	req.Header.Set("X-Forwarded-For", "203.0.113.66")
	res, err := inst.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var v struct {
		Session struct {
			IPAddress string `json:"ipAddress"`
		} `json:"session"`
	}
	if err := json.NewDecoder(res.Body).Decode(&v); err != nil || v.Session.IPAddress != "203.0.113.66" {
		t.Errorf("session IP %q (%v), want the forwarded 203.0.113.66", v.Session.IPAddress, err)
	}
}

// eventuallyClosed waits for the server to close c, within a generous bound.
func eventuallyClosed(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the server kept the connection open")
	}
}

// trickle writes one byte every 100 ms to c (a slowloris body) until the
// returned stop is called or a write fails.
func trickle(c net.Conn) (stop func()) {
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(100 * time.Millisecond):
				if _, err := c.Write([]byte(" ")); err != nil {
					return
				}
			}
		}
	}()
	return func() { close(done) }
}
