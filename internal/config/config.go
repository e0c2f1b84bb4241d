// Package config reads Astra's settings from the environment (the original
// app's names plus ASTRA_*), an optional .env file and flag overrides, and
// checks them, so a bad setting fails start with one line naming it.
package config

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/astra-app/astra/internal/clientip"
)

// Config is every setting of the astra binary.
type Config struct {
	Addr     string // ASTRA_ADDR
	LogLevel string // ASTRA_LOG_LEVEL: debug|info|warn|error
	DataDir  string // ASTRA_DATA_DIR
	TasksDir string // ASTRA_TASKS_DIR
	Roles    []string

	MongoURI    string // MONGODB_URI or composed from MONGODB_USERNAME/PASSWORD/CLUSTER
	MongoDB     string // MONGODB_DB
	MongoPlural bool   // ASTRA_MONGODB_PLURAL: Better Auth's usePlural

	AuthSecret          string // BETTER_AUTH_SECRET (or AUTH_SECRET, or the first of BETTER_AUTH_SECRETS)
	AuthSecretGenerated bool   // true when generated and kept in the data dir
	AppURL              string // BETTER_AUTH_URL or NEXT_PUBLIC_APP_URL
	AllowedOrigins      []string
	CookiePrefix        string
	SessionExpiresIn    time.Duration
	SessionUpdateAge    time.Duration
	DevLogin            bool             // ASTRA_DEV_LOGIN, or automatic: no Google, a loopback listener and a loopback app URL
	DevLoginExplicit    bool             // ASTRA_DEV_LOGIN=true: on whatever the URL (start logs a loud warning)
	TrustedProxies      clientip.Proxies // ASTRA_TRUSTED_PROXIES: whose X-Forwarded-For is believed

	ReadTimeout    time.Duration // ASTRA_READ_TIMEOUT: one request's headers and body
	IdleTimeout    time.Duration // ASTRA_IDLE_TIMEOUT: a keep-alive connection between requests
	MaxConnections int           // ASTRA_MAX_CONNECTIONS: 0 means derived from the file-descriptor limit

	// EgressAllow (ASTRA_EGRESS_ALLOW) opens addresses the egress policy
	// refuses by default to tasks' api_call and speech requests.
	EgressAllow []string

	// AdminEmails (ASTRA_ADMIN_EMAILS) are operators besides the users whose
	// record has Better Auth's role "admin": they may open the console.
	AdminEmails []string

	GoogleClientID       string
	GoogleClientSecret   string
	GoogleRedirectURI    string
	GoogleEnableBirthday bool
	GoogleEnableGmail    bool
	GooglePrompt         string
	GoogleIssuer         string // ASTRA_GOOGLE_ISSUER, for tests against another OIDC provider

	JulepBaseURL    string
	JulepAPIKey     string
	JulepAuthHeader string // ASTRA_JULEP_AUTH_HEADER: Authorization (Bearer) or e.g. X-Auth-Key

	EngineKey           string // ASTRA_ENGINE_KEY: the embedded engine's API key (generated when unset)
	EngineConcurrency   int
	EngineRetryAttempts int           // ASTRA_ENGINE_RETRY_ATTEMPTS: tries of a model or api_call call, the first included
	EngineRetryMax      time.Duration // ASTRA_ENGINE_RETRY_MAX: no retry starts later than this after the first try
	EngineLease         time.Duration // ASTRA_ENGINE_LEASE: how long an instance owns an execution without a heartbeat
	// Per-execution budgets of the embedded engine (ASTRA_ENGINE_MAX_*).
	EngineMaxSteps    int
	EngineMaxDepth    int
	EngineMaxDuration time.Duration
	EngineMaxOutput   int // bytes of one step's output (JSON)

	LLMBaseURL string
	LLMAPIKey  string
	LLMModel   string

	// An OpenAI-compatible /embeddings endpoint for the embedded engine's
	// docs; unset: the offline embedder.
	EmbeddingBaseURL string
	EmbeddingAPIKey  string
	EmbeddingModel   string
	TTSURL           string

	StreamPoll       time.Duration
	SocketsPerUser   int
	SocketFlush      time.Duration
	DispatchSweep    time.Duration
	DispatchLease    time.Duration
	DispatchInFlight int
	DispatchPerUser  int
	DispatchAttempts int
	ShutdownTimeout  time.Duration

	MessagesPerMinute int // ASTRA_MESSAGES_PER_MINUTE: per-user POST limit, 0 = off
	MessageBurst      int // ASTRA_MESSAGE_BURST

	Secrets map[string]string // ASTRA_SECRET_<NAME>: task secrets seeded into the engine

	flags map[string]string // setting -> the flag that gave it, for error messages
}

// name is how an error names a setting: the flag when one gave the value.
func (c *Config) name(k string) string {
	if f, ok := c.flags[k]; ok {
		return "--" + f
	}
	return k
}

// GoogleEnabled reports whether Google sign-in is configured.
func (c *Config) GoogleEnabled() bool { return c.GoogleClientID != "" && c.GoogleClientSecret != "" }

// EmbeddedEngine reports whether astra serves its own Julep-compatible engine.
func (c *Config) EmbeddedEngine() bool { return c.JulepBaseURL == "" }

// HasRole reports whether this instance runs the named role (api, dispatch).
func (c *Config) HasRole(r string) bool { return slices.Contains(c.Roles, r) }

// Loopback reports whether Addr listens only on a loopback address.
func (c *Config) Loopback() bool { return isLoopback(c.Addr) }

// Lookup finds a setting; the bool reports whether it is set at all.
type Lookup func(key string) (string, bool)

// Layered looks keys up in each source in turn: flags first, then the
// process environment, then a .env file.
func Layered(sources ...Lookup) Lookup {
	return func(k string) (string, bool) {
		for _, s := range sources {
			if s == nil {
				continue
			}
			if v, ok := s(k); ok {
				return v, true
			}
		}
		return "", false
	}
}

// Map is a Lookup over a map.
func Map(m map[string]string) Lookup {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// Getenv adapts a getenv function: an empty value counts as unset.
func Getenv(getenv func(string) string) Lookup {
	return func(k string) (string, bool) {
		v := getenv(k)
		return v, v != ""
	}
}

// Environ lists the names ASTRA_SECRET_* can be found under; run passes os.Environ.
type Environ func() []string

// SettingError is a configuration problem: a missing or bad setting. Every
// one exits with the same code (2) and names the setting, or the flag when
// the value came from one.
type SettingError struct{ Err error }

func (e *SettingError) Error() string { return e.Err.Error() }
func (e *SettingError) Unwrap() error { return e.Err }

// Load reads and checks the configuration. Every problem is reported, one line
// each, joined into the returned error.
func Load(look Lookup, environ []string) (*Config, error) {
	return LoadFlags(look, environ, nil)
}

// LoadFlags is Load where flags maps a setting to the flag that gave its
// value ("ASTRA_ROLES" -> "roles"): errors about it name "--roles".
func LoadFlags(look Lookup, environ []string, flags map[string]string) (*Config, error) {
	p := &parser{look: look, flags: flags}
	c := &Config{
		Addr:     p.str("ASTRA_ADDR", "127.0.0.1:8080"),
		LogLevel: p.oneOf("ASTRA_LOG_LEVEL", "info", "debug", "info", "warn", "error"),
		DataDir:  p.str("ASTRA_DATA_DIR", ".astra"),
		TasksDir: p.str("ASTRA_TASKS_DIR", "tasks"),
		Roles:    p.list("ASTRA_ROLES", "api,dispatch"),

		MongoDB:     p.str("MONGODB_DB", "astra"),
		MongoPlural: p.boolean("ASTRA_MONGODB_PLURAL", false),

		CookiePrefix:     p.str("ASTRA_COOKIE_PREFIX", "better-auth"),
		SessionExpiresIn: p.duration("ASTRA_SESSION_EXPIRES_IN", 7*24*time.Hour),
		SessionUpdateAge: p.duration("ASTRA_SESSION_UPDATE_AGE", 12*time.Hour),

		GoogleClientID:       p.str("GOOGLE_CLIENT_ID", ""),
		GoogleClientSecret:   p.str("GOOGLE_CLIENT_SECRET", ""),
		GoogleRedirectURI:    p.str("GOOGLE_REDIRECT_URI", ""),
		GoogleEnableBirthday: p.boolean("GOOGLE_ENABLE_BIRTHDAY_SCOPE", true),
		GoogleEnableGmail:    p.boolean("GOOGLE_ENABLE_GMAIL_READ_SCOPE", false),
		GooglePrompt: p.oneOf("GOOGLE_OAUTH_PROMPT", "select_account consent",
			"select_account", "consent", "login", "none", "select_account consent"),
		GoogleIssuer: p.str("ASTRA_GOOGLE_ISSUER", "https://accounts.google.com"),

		JulepBaseURL:    strings.TrimRight(p.str("JULEP_BASE_URL", ""), "/"),
		JulepAPIKey:     p.str("JULEP_API_KEY", ""),
		JulepAuthHeader: p.str("ASTRA_JULEP_AUTH_HEADER", "Authorization"),

		EngineKey:           p.str("ASTRA_ENGINE_KEY", ""),
		EngineConcurrency:   p.positive("ASTRA_ENGINE_CONCURRENCY", 128),
		EngineRetryAttempts: p.positive("ASTRA_ENGINE_RETRY_ATTEMPTS", 5),
		EngineRetryMax:      p.duration("ASTRA_ENGINE_RETRY_MAX", 30*time.Second),
		EngineLease:         p.duration("ASTRA_ENGINE_LEASE", 10*time.Second),
		EngineMaxSteps:      p.positive("ASTRA_ENGINE_MAX_STEPS", 10_000),
		EngineMaxDepth:      p.positive("ASTRA_ENGINE_MAX_DEPTH", 16),
		EngineMaxDuration:   p.duration("ASTRA_ENGINE_MAX_DURATION", time.Hour),
		EngineMaxOutput:     p.positive("ASTRA_ENGINE_MAX_OUTPUT_BYTES", 2<<20),

		LLMBaseURL: strings.TrimRight(p.str("ASTRA_LLM_BASE_URL", ""), "/"),
		LLMAPIKey:  p.str("ASTRA_LLM_API_KEY", ""),
		LLMModel:   p.str("ASTRA_LLM_MODEL", ""),

		EmbeddingBaseURL: strings.TrimRight(p.str("ASTRA_EMBEDDING_BASE_URL", ""), "/"),
		EmbeddingAPIKey:  p.str("ASTRA_EMBEDDING_API_KEY", ""),
		EmbeddingModel:   p.str("ASTRA_EMBEDDING_MODEL", ""),
		TTSURL:           p.str("ASTRA_TTS_URL", ""),

		StreamPoll:       p.duration("ASTRA_STREAM_POLL", 250*time.Millisecond),
		SocketsPerUser:   p.positive("ASTRA_SOCKETS_PER_USER", 16),
		SocketFlush:      p.duration("ASTRA_SOCKET_FLUSH", 20*time.Millisecond),
		DispatchSweep:    p.duration("ASTRA_DISPATCH_SWEEP", time.Second),
		DispatchLease:    p.duration("ASTRA_DISPATCH_LEASE", 30*time.Second),
		DispatchInFlight: p.positive("ASTRA_DISPATCH_MAX_INFLIGHT", 64),
		DispatchPerUser:  p.positive("ASTRA_DISPATCH_MAX_PER_USER", 4),
		DispatchAttempts: p.positive("ASTRA_DISPATCH_MAX_ATTEMPTS", 5),
		ShutdownTimeout:  p.duration("ASTRA_SHUTDOWN_TIMEOUT", 15*time.Second),

		MessagesPerMinute: p.count("ASTRA_MESSAGES_PER_MINUTE", 60),
		MessageBurst:      p.positive("ASTRA_MESSAGE_BURST", 20),

		ReadTimeout: p.duration("ASTRA_READ_TIMEOUT", 30*time.Second),
		IdleTimeout: p.duration("ASTRA_IDLE_TIMEOUT", 60*time.Second),
		EgressAllow: p.list("ASTRA_EGRESS_ALLOW", ""),
		AdminEmails: p.list("ASTRA_ADMIN_EMAILS", ""),
	}
	if v := p.str("ASTRA_MAX_CONNECTIONS", ""); v != "" {
		c.MaxConnections = p.positive("ASTRA_MAX_CONNECTIONS", 0)
	}
	if tp, err := clientip.Parse(p.list("ASTRA_TRUSTED_PROXIES", "")); err != nil {
		p.fail("ASTRA_TRUSTED_PROXIES: %v (use comma-separated IPs or CIDRs such as 10.0.0.0/8)", err)
	} else {
		c.TrustedProxies = tp
	}
	for _, a := range c.EgressAllow {
		if !validEgressEntry(a) {
			p.fail("ASTRA_EGRESS_ALLOW has %q: use IPs, CIDRs such as 10.0.0.0/8, or host names", a)
		}
	}

	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		p.fail("%s %q is not host:port", p.name("ASTRA_ADDR"), c.Addr)
	}
	if len(c.Roles) == 0 {
		// An instance with no role serves nothing yet would report ready.
		p.fail("%s is empty: give api, dispatch or api,dispatch", p.name("ASTRA_ROLES"))
	}
	for _, r := range c.Roles {
		if r != "api" && r != "dispatch" {
			p.fail("%s has %q: roles are api and dispatch", p.name("ASTRA_ROLES"), r)
		}
	}

	c.MongoURI = p.str("MONGODB_URI", "")
	if c.SocketFlush > time.Second {
		p.fail("ASTRA_SOCKET_FLUSH %v is too long: at most 1s (it delays live frames)", c.SocketFlush)
	}
	if c.MongoURI == "" {
		user, pass, cluster := p.str("MONGODB_USERNAME", ""), p.str("MONGODB_PASSWORD", ""), p.str("MONGODB_CLUSTER", "")
		switch {
		case user != "" && pass != "" && cluster != "":
			c.MongoURI = fmt.Sprintf("mongodb+srv://%s:%s@%s.mongodb.net/?retryWrites=true&w=majority&appName=astra",
				url.QueryEscape(user), url.QueryEscape(pass), cluster)
		case user != "" || pass != "" || cluster != "":
			p.fail("MONGODB_USERNAME, MONGODB_PASSWORD and MONGODB_CLUSTER must be set together (or set MONGODB_URI)")
		}
	}
	if c.MongoURI != "" && !strings.HasPrefix(c.MongoURI, "mongodb://") && !strings.HasPrefix(c.MongoURI, "mongodb+srv://") {
		p.fail("MONGODB_URI must start with mongodb:// or mongodb+srv://")
	}

	c.AuthSecret = p.str("BETTER_AUTH_SECRET", "")
	if c.AuthSecret == "" {
		c.AuthSecret = p.str("AUTH_SECRET", "")
	}
	if c.AuthSecret == "" {
		// "2:new,1:old": the first entry signs and verifies.
		if s := p.str("BETTER_AUTH_SECRETS", ""); s != "" {
			first, _, _ := strings.Cut(s, ",")
			if _, v, ok := strings.Cut(first, ":"); ok {
				c.AuthSecret = strings.TrimSpace(v)
			} else {
				p.fail("BETTER_AUTH_SECRETS must look like \"2:new-secret,1:old-secret\"")
			}
		}
	}

	c.AppURL = strings.TrimRight(p.str("BETTER_AUTH_URL", p.str("NEXT_PUBLIC_APP_URL", "")), "/")
	if c.AppURL == "" {
		c.AppURL = "http://" + displayAddr(c.Addr)
	} else if u, err := url.Parse(c.AppURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.fail("BETTER_AUTH_URL/NEXT_PUBLIC_APP_URL %q is not an http(s) URL", c.AppURL)
	}
	// The app's own origin is always allowed; the list adds others. The
	// hosts served are derived from these origins (see server.Deps).
	c.AllowedOrigins = []string{originOf(c.AppURL)}
	for _, o := range p.list("ASTRA_ALLOWED_ORIGINS", "") {
		if u, err := url.Parse(o); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			p.fail("ASTRA_ALLOWED_ORIGINS has %q: use origins such as https://app.example.com", o)
			continue
		}
		if o = originOf(o); !slices.Contains(c.AllowedOrigins, o) {
			c.AllowedOrigins = append(c.AllowedOrigins, o)
		}
	}
	if c.Loopback() {
		_, port, _ := net.SplitHostPort(c.Addr)
		for _, h := range []string{"localhost", "127.0.0.1", "[::1]"} {
			if o := "http://" + h + ":" + port; !slices.Contains(c.AllowedOrigins, o) {
				c.AllowedOrigins = append(c.AllowedOrigins, o)
			}
		}
	}

	if (c.GoogleClientID == "") != (c.GoogleClientSecret == "") {
		p.fail("GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET must be set together")
	}
	if c.GoogleEnabled() && c.GoogleRedirectURI == "" {
		c.GoogleRedirectURI = c.AppURL + "/api/auth/google/callback"
	}
	if c.GoogleRedirectURI != "" {
		if u, err := url.Parse(c.GoogleRedirectURI); err != nil || u.Host == "" {
			p.fail("GOOGLE_REDIRECT_URI %q is not an absolute URL", c.GoogleRedirectURI)
		}
	}
	if v, ok := look("ASTRA_DEV_LOGIN"); ok && v != "" {
		c.DevLogin = p.boolean("ASTRA_DEV_LOGIN", false)
		c.DevLoginExplicit = c.DevLogin
	} else {
		// Automatic only when both the listener and the URL people use are
		// this machine: behind a same-host reverse proxy the listener is
		// loopback but the public app URL is not, and strangers reach it.
		c.DevLogin = !c.GoogleEnabled() && c.Loopback() && loopbackURL(c.AppURL)
	}
	if c.JulepBaseURL != "" {
		if u, err := url.Parse(c.JulepBaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p.fail("%s %q is not an http(s) URL", p.name("JULEP_BASE_URL"), c.JulepBaseURL)
		}
	}
	if c.EmbeddingBaseURL != "" {
		if u, err := url.Parse(c.EmbeddingBaseURL); err != nil || u.Host == "" {
			p.fail("ASTRA_EMBEDDING_BASE_URL %q is not an absolute URL", c.EmbeddingBaseURL)
		} else if c.EmbeddingModel == "" {
			p.fail("ASTRA_EMBEDDING_MODEL is required with ASTRA_EMBEDDING_BASE_URL")
		}
	}
	if c.LLMBaseURL != "" {
		if u, err := url.Parse(c.LLMBaseURL); err != nil || u.Host == "" {
			p.fail("ASTRA_LLM_BASE_URL %q is not an absolute URL", c.LLMBaseURL)
		}
	}

	c.Secrets = map[string]string{}
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		if name, ok := strings.CutPrefix(k, "ASTRA_SECRET_"); ok && name != "" && v != "" {
			c.Secrets[name] = v
		}
	}
	if len(p.errs) > 0 {
		return nil, &SettingError{Err: errors.Join(p.errs...)}
	}
	c.flags = flags
	return c, nil
}

// EnsureSecrets fills settings that embedded mode may generate and keep in
// the data dir (mode 0600): the Better Auth secret and the engine key. It
// reports which it generated, for a log line that names them (never the values).
func (c *Config) EnsureSecrets() (generated []string, err error) {
	if c.AuthSecret == "" {
		if c.MongoURI != "" {
			return nil, &SettingError{Err: errors.New("BETTER_AUTH_SECRET is required with MONGODB_URI: sessions are shared with the Next.js app")}
		}
		s, gen, err := c.keptSecret("auth-secret")
		if err != nil {
			return nil, err
		}
		c.AuthSecret, c.AuthSecretGenerated = s, true
		if gen {
			generated = append(generated, "BETTER_AUTH_SECRET")
		}
	}
	if c.EngineKey == "" && c.EmbeddedEngine() {
		s, gen, err := c.keptSecret(EngineKeyFile)
		if err != nil {
			return nil, err
		}
		c.EngineKey = s
		if gen {
			generated = append(generated, "ASTRA_ENGINE_KEY")
		}
	}
	return generated, nil
}

// EngineKeyFile is where the embedded engine's generated key is kept in the
// data dir; the CLI reads it to reach a local engine.
const EngineKeyFile = "engine-key"

// EnsureEngineKey fills EngineKey for a standalone engine (`astra engine`)
// whatever JULEP_BASE_URL says: ASTRA_ENGINE_KEY, else the key kept in the
// data dir (generated once, mode 0600). It returns the file's path ("" when
// the key came from the environment) and whether it was generated now.
func (c *Config) EnsureEngineKey() (path string, generated bool, err error) {
	if c.EngineKey != "" {
		return "", false, nil
	}
	s, gen, err := c.keptSecret(EngineKeyFile)
	if err != nil {
		return "", false, err
	}
	c.EngineKey = s
	return filepath.Join(c.DataDir, EngineKeyFile), gen, nil
}

func (c *Config) keptSecret(name string) (string, bool, error) {
	dir := c.DataDir
	path := filepath.Join(dir, name)
	if b, err := os.ReadFile(path); err == nil {
		if s := strings.TrimSpace(string(b)); s != "" {
			return s, false, nil
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", false, &SettingError{Err: fmt.Errorf("%s %q cannot be created: %v", c.name("ASTRA_DATA_DIR"), dir, unwrapPathErr(err))}
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", false, err
	}
	s := hex.EncodeToString(b)
	if err := os.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
		return "", false, &SettingError{Err: fmt.Errorf("%s %q is not writable: %v", c.name("ASTRA_DATA_DIR"), dir, unwrapPathErr(err))}
	}
	return s, true, nil
}

func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// loopbackURL reports whether u names this machine (localhost, 127.0.0.0/8, ::1).
func loopbackURL(u string) bool {
	p, err := url.Parse(u)
	if err != nil {
		return false
	}
	h := p.Hostname()
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// validEgressEntry accepts an IP, a CIDR or a host name.
func validEgressEntry(s string) bool {
	if _, _, err := net.ParseCIDR(s); err == nil {
		return true
	}
	if net.ParseIP(s) != nil {
		return true
	}
	if s == "" || len(s) > 253 || strings.ContainsAny(s, "/:@ ") {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 {
			return false
		}
	}
	return true
}

func displayAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" || host == "127.0.0.1" {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

func originOf(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	return p.Scheme + "://" + p.Host
}

type parser struct {
	look  Lookup
	flags map[string]string // setting -> flag that set it
	errs  []error
}

// name is how an error names a setting: the flag when one gave the value.
func (p *parser) name(k string) string {
	if f, ok := p.flags[k]; ok {
		return "--" + f
	}
	return k
}

func (p *parser) fail(format string, args ...any) {
	p.errs = append(p.errs, fmt.Errorf(format, args...))
}

func (p *parser) str(k, def string) string {
	if v, ok := p.look(k); ok {
		return strings.TrimSpace(v)
	}
	return def
}

func (p *parser) list(k, def string) []string {
	var out []string
	for _, s := range strings.Split(p.str(k, def), ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func (p *parser) oneOf(k, def string, allowed ...string) string {
	v := p.str(k, def)
	if !slices.Contains(allowed, v) {
		p.fail("%s %q is not one of: %s", p.name(k), v, strings.Join(allowed, ", "))
		return def
	}
	return v
}

// ParseBool accepts the original app's spellings: 1/true/yes/on and 0/false/no/off.
func ParseBool(s string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "true", "yes", "on":
		return true, true
	case "0", "false", "no", "off":
		return false, true
	}
	return false, false
}

func (p *parser) boolean(k string, def bool) bool {
	v, ok := p.look(k)
	if !ok || strings.TrimSpace(v) == "" {
		return def
	}
	b, ok := ParseBool(v)
	if !ok {
		p.fail("%s %q is not a boolean (use true/false, 1/0, yes/no, on/off)", p.name(k), v)
		return def
	}
	return b
}

func (p *parser) duration(k string, def time.Duration) time.Duration {
	v, ok := p.look(k)
	if !ok || strings.TrimSpace(v) == "" {
		return def
	}
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil || d <= 0 {
		p.fail("%s %q is not a positive duration such as 250ms, 30s or 12h", p.name(k), v)
		return def
	}
	return d
}

// count reads a whole number that may be 0 (which turns a limit off).
func (p *parser) count(k string, def int) int {
	v, ok := p.look(k)
	if !ok || strings.TrimSpace(v) == "" {
		return def
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 {
		p.fail("%s %q is not a whole number (0 turns it off)", p.name(k), v)
		return def
	}
	return n
}

func (p *parser) positive(k string, def int) int {
	v, ok := p.look(k)
	if !ok || strings.TrimSpace(v) == "" {
		return def
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n <= 0 {
		p.fail("%s %q is not a positive whole number", p.name(k), v)
		return def
	}
	return n
}
