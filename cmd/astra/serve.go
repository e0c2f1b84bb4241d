package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/joho/godotenv"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/astra-app/astra/internal/auth"
	"github.com/astra-app/astra/internal/config"
	"github.com/astra-app/astra/internal/deploy"
	"github.com/astra-app/astra/internal/dispatch"
	"github.com/astra-app/astra/internal/egress"
	"github.com/astra-app/astra/internal/engine"
	"github.com/astra-app/astra/internal/engine/mongostate"
	"github.com/astra-app/astra/internal/engine/sqlitestate"
	"github.com/astra-app/astra/internal/httpobs"
	"github.com/astra-app/astra/internal/httpserve"
	"github.com/astra-app/astra/internal/julep"
	"github.com/astra-app/astra/internal/llm"
	"github.com/astra-app/astra/internal/readiness"
	"github.com/astra-app/astra/internal/responder"
	"github.com/astra-app/astra/internal/retry"
	"github.com/astra-app/astra/internal/server"
	"github.com/astra-app/astra/internal/store"
	"github.com/astra-app/astra/internal/store/mongo"
	"github.com/astra-app/astra/internal/store/sqlite"
	"github.com/astra-app/astra/internal/stream"
	"github.com/astra-app/astra/internal/taskdef"
	"github.com/astra-app/astra/internal/telemetry"
	"github.com/astra-app/astra/internal/web"
	"github.com/astra-app/astra/tasks"
)

func newServeCmd(e *env) *cobra.Command {
	var addr, dataDir, roles, logLevel string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the API, the live stream, sign-in, the dashboard and the dispatcher",
		Long: `Serve Astra's responder on one listener: the REST API, the WebSocket stream, sign-in,
the dashboard, and (with the dispatch role) the dispatcher. With no JULEP_BASE_URL the
embedded Julep-compatible engine is mounted at /julep and tasks/ is deployed to it at start.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			flags := map[string]string{}
			for name, key := range map[string]string{"addr": "ASTRA_ADDR", "data-dir": "ASTRA_DATA_DIR", "roles": "ASTRA_ROLES", "log-level": "ASTRA_LOG_LEVEL"} {
				if f := cmd.Flags().Lookup(name); f != nil && f.Changed {
					flags[key] = f.Value.String()
				}
			}
			cfg, err := e.loadConfig(flags)
			if err != nil {
				return err
			}
			return serve(cmd.Context(), e, cfg)
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "", "listen address (ASTRA_ADDR, default 127.0.0.1:8080)")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "data directory (ASTRA_DATA_DIR, default .astra)")
	cmd.Flags().StringVar(&roles, "roles", "", "roles to run: api, dispatch or both (ASTRA_ROLES, default api,dispatch)")
	cmd.Flags().StringVar(&logLevel, "log-level", "", "debug, info, warn or error (ASTRA_LOG_LEVEL, default info)")
	return cmd
}

// serve runs until ctx ends, then shuts down in dependency order: stop
// claiming (leases are finished or released), stop serving, stop the
// engine (running executions stay resumable), close the store.
func serve(ctx context.Context, e *env, cfg *config.Config) error {
	log := e.logger(cfg.LogLevel)
	// OTEL_* as the other settings: the environment, then .env.
	dotenv, _ := godotenv.Read(".env")
	otelEnv := func(k string) string { return cmp.Or(e.getenv(k), dotenv[k]) }
	shutdownTraces, err := telemetry.Setup(ctx, otelEnv, version)
	if err != nil {
		return err
	}
	defer func() {
		// Spans still queued go out before the process ends.
		fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = shutdownTraces(fctx)
	}()
	if telemetry.Exporting(otelEnv) {
		log.Info("exporting traces over OTLP", "service", cmp.Or(otelEnv("OTEL_SERVICE_NAME"), "astra"))
	}
	generated, err := cfg.EnsureSecrets()
	if err != nil {
		return err
	}
	for _, name := range generated {
		log.Warn("generated a secret and kept it in the data dir (mode 0600); set it explicitly in production",
			"setting", name, "dir", cfg.DataDir)
	}

	st, backend, err := store.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s (ASTRA_ADDR): %w", cfg.Addr, err)
	}
	defer ln.Close()
	self := "http://" + dialAddr(ln.Addr().String())

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Rows: a row's state changes made by a dispatcher in another instance
	// reach this one's sockets as the row's events, then read from the store.
	hub := stream.NewHub(stream.Options{Logger: log, Rows: st})
	registerHubMetrics(reg, hub)

	// Julep: a configured endpoint, or the embedded engine on this listener.
	var eng *engine.Engine
	julepURL, julepKey, julepHeader := cfg.JulepBaseURL, cfg.JulepAPIKey, cfg.JulepAuthHeader
	if cfg.EmbeddedEngine() {
		eng, err = newEmbeddedEngine(ctx, cfg, st, log, e.taskSecrets(cfg), reg)
		if err != nil {
			return err
		}
		if err := eng.Start(ctx); err != nil {
			return fmt.Errorf("start embedded engine: %w", err)
		}
		defer eng.Close()
		julepURL, julepKey, julepHeader = self+"/julep", cfg.EngineKey, "Authorization"
	}
	jc, err := julep.New(julepURL, julepKey, julep.WithAuthHeader(julepHeader))
	if err != nil {
		return fmt.Errorf("JULEP_BASE_URL: %w", err)
	}

	var (
		disp   atomic.Pointer[dispatch.Dispatcher]
		taskID atomic.Pointer[string] // set once the responder task is deployed (or found)
	)
	checks, err := readyChecks(cfg, st, julepURL, julepKey, julepHeader, &taskID)
	if err != nil {
		return err
	}
	readyz := (&readiness.Checker{Checks: checks}).Handler()
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
	var handler http.Handler
	if cfg.HasRole("api") {
		sessions := auth.New(st, auth.OptionsFromConfig(cfg))
		google, err := auth.GoogleFromConfig(cfg)
		if err != nil {
			return err
		}
		switch {
		case cfg.DevLoginExplicit:
			log.Warn("!!! DEV LOGIN IS ON (ASTRA_DEV_LOGIN=true): anyone who can reach this server can sign in as ANY user, by email alone. Never set this on a server strangers can reach.",
				"app_url", cfg.AppURL, "addr", cfg.Addr)
		case cfg.DevLogin:
			log.Warn("dev login is on: this server listens on loopback with a loopback app URL, so anyone on this machine can sign in as any email (set ASTRA_DEV_LOGIN=false to turn it off)")
		}
		deps := server.Deps{
			Store: st, Sessions: sessions, Hub: hub, Logger: log,
			AllowedOrigins: cfg.AllowedOrigins,
			AuthRoutes: auth.Routes(auth.RoutesDeps{
				Store: st, Sessions: sessions, DevLogin: cfg.DevLogin, Google: google, Logger: log,
			}),
			Dashboard: web.Handler(),
			Metrics:   metrics,
			Readiness: readyz,
			Execution: executionView(jc),
			Console:   &server.Console{Julep: jc, AdminEmails: cfg.AdminEmails},
			OnEnqueue: func(responder.Message) {
				if d := disp.Load(); d != nil {
					d.Wake()
				}
			},
			Context:           ctx,
			MessagesPerMinute: cfg.MessagesPerMinute,
			MessageBurst:      cfg.MessageBurst,
			SocketsPerUser:    cfg.SocketsPerUser,
			SocketFlush:       cfg.SocketFlush,
		}
		if eng != nil {
			deps.Engine = eng.Handler()
		}
		handler = server.New(deps)
	} else {
		handler = opsHandler(readyz, metrics, eng)
	}
	// Outside the router: a request id, a server span and the HTTP metrics
	// for every request, with the route pattern chi matched.
	handler = httpobs.Middleware(httpobs.Options{Metrics: httpobs.NewMetrics(reg), Logger: log})(handler)
	srv := httpserve.New(handler, httpserve.Options{
		ReadTimeout: cfg.ReadTimeout, IdleTimeout: cfg.IdleTimeout, MaxConnections: cfg.MaxConnections, Logger: log,
	})
	if r := httpserve.Reserve(srv.MaxConnections()); r >= 0 && r < 64 {
		log.Warn("ASTRA_MAX_CONNECTIONS leaves fewer than 64 file descriptors for the store and outbound calls; lower it or raise ulimit -n",
			"max_connections", srv.MaxConnections(), "fd_reserve", r)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	responderID, err := responderTask(ctx, cfg, jc, eng != nil)
	if err != nil {
		return err
	}
	taskID.Store(&responderID)

	// Writes by other instances arrive by MongoDB change streams where the
	// server has them, else by polling; decided once, here.
	watch := changeStreamStore(ctx, st, log)

	var wg sync.WaitGroup
	if cfg.HasRole("dispatch") {
		var dispHub *stream.Hub
		if cfg.HasRole("api") {
			dispHub = hub // same process: publish in process, after the commit
		}
		d := dispatch.New(dispatch.Options{
			Store: st, Julep: jc, Hub: dispHub, TaskID: responderID,
			// Every instance's feed reads the shared deltas: the sockets
			// of a reply may be held by any API instance.
			ShareDeltas: true, DeltaFlush: cfg.SocketFlush,
			Lease: cfg.DispatchLease, Sweep: cfg.DispatchSweep,
			MaxInFlight: cfg.DispatchInFlight, MaxPerUser: cfg.DispatchPerUser, MaxAttempts: cfg.DispatchAttempts,
			ShutdownGrace: cfg.ShutdownTimeout / 2,
			Logger:        log, Metrics: reg,
		})
		disp.Store(d)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				log.Error("dispatcher stopped", "err", err)
			}
		}()
		if watch != nil {
			// Rows enqueued by other instances wake this one at once; the
			// sweep stays the safety net.
			log.Info("dispatch wake-up: change stream on the outbox, plus the sweep", "sweep", cfg.DispatchSweep)
			w := &mongo.OutboxWaker{Store: watch, Wake: d.Wake, Logger: log}
			wg.Add(1)
			go func() { defer wg.Done(); _ = w.Run(ctx) }()
		}
	}
	if cfg.HasRole("api") {
		// One feed per instance: events written by other instances (or
		// processes) reach this instance's sockets; the hub drops repeats.
		feed := eventFeed(watch, st, hub, cfg.StreamPoll, log)
		wg.Add(1)
		go func() { defer wg.Done(); _ = feed.Run(ctx) }()
	}

	log.Info("astra serving", "url", self, "store", backend, "embedded_engine", eng != nil,
		"offline_model", eng != nil && cfg.LLMBaseURL == "", "roles", cfg.Roles, "dev_login", cfg.DevLogin && cfg.HasRole("api"),
		"max_connections", srv.MaxConnections(), "read_timeout", cfg.ReadTimeout, "idle_timeout", cfg.IdleTimeout)
	fmt.Fprintf(e.stdout, "astra listening on %s\n", self)

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	// One deadline for the whole shutdown, whatever is running: what has
	// not stopped by then is left to its leases (another instance, or the
	// next start, takes it over).
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if !within(sctx, wg.Wait) { // the dispatcher finishes or releases its rows within its grace
		log.Warn("shutdown timeout: rows still in work are left to their leases")
		return nil
	}
	// Close ends the engine's SSE streams, which Shutdown would wait for.
	if eng != nil && !within(sctx, func() { eng.Close() }) {
		log.Warn("shutdown timeout: executions still running are left to their leases")
		return nil
	}
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	return nil
}

// within runs fn and reports whether it returned before ctx ended; fn
// goes on in the background otherwise (the process is about to exit).
func within(ctx context.Context, fn func()) bool {
	done := make(chan struct{})
	go func() { fn(); close(done) }()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}

// changeStreamStore returns st's MongoDB store when its server has change
// streams, else nil: SQLite, a standalone MongoDB and FerretDB poll.
func changeStreamStore(ctx context.Context, st responder.Store, log *slog.Logger) *mongo.Store {
	ms, ok := st.(*mongo.Store)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := ms.CheckChangeStreams(ctx); err != nil {
		log.Info("MongoDB change streams unavailable; polling instead", "reason", err)
		return nil
	}
	return ms
}

// eventFeed is the instance's one feed of events into the hub: a change
// stream on watch when there is one, else the poller on st. Both read the
// deltas dispatchers share through the store, every delta of a reply
// before its answer (stream.Poller.Poll says why the order holds).
func eventFeed(watch *mongo.Store, st responder.Store, hub *stream.Hub, poll time.Duration, log *slog.Logger) stream.Feed {
	deltas := &stream.DeltaReader{Store: st, Hub: hub}
	if watch != nil {
		log.Info("stream feed: change stream; deltas polled", "every", cmp.Or(poll, stream.DefaultPollInterval))
		return changeFeed{
			deltas: deltas, poll: poll, log: log,
			events: &mongo.EventFeed{Store: watch, Logger: log, Publish: func(e responder.Event) {
				if stream.EndsReply(e) {
					// The answer's deltas were committed before it: read
					// them now so they go out first.
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					if err := deltas.Read(ctx); err != nil {
						log.Warn("stream: read deltas before an answer", "err", err)
					}
					cancel()
				}
				hub.PublishEvent(e)
			}},
		}
	}
	log.Info(fmt.Sprintf("stream feed: polling every %v", cmp.Or(poll, stream.DefaultPollInterval)))
	return &stream.Poller{Store: st, Hub: hub, Interval: poll, Logger: log, Deltas: deltas}
}

// changeFeed runs a change stream of events and a poll of deltas.
type changeFeed struct {
	events *mongo.EventFeed
	deltas *stream.DeltaReader
	poll   time.Duration
	log    *slog.Logger
}

func (f changeFeed) Run(ctx context.Context) error {
	done := make(chan struct{})
	go func() { defer close(done); _ = f.deltas.Run(ctx, f.poll, f.log) }()
	err := f.events.Run(ctx)
	<-done
	return err
}

// newEmbeddedEngine keeps the engine's state in the project's database.
func newEmbeddedEngine(ctx context.Context, cfg *config.Config, st responder.Store, log *slog.Logger, secrets map[string]string, reg prometheus.Registerer) (*engine.Engine, error) {
	var (
		state engine.State
		err   error
	)
	switch s := st.(type) {
	case *sqlite.Store:
		state, err = sqlitestate.New(ctx, s)
	case *mongo.Store:
		state, err = mongostate.New(ctx, s.Database())
	default:
		err = fmt.Errorf("no engine state for store %T", st)
	}
	if err != nil {
		return nil, fmt.Errorf("embedded engine state: %w", err)
	}
	model := llm.Offline()
	if cfg.LLMBaseURL != "" {
		model = llm.NewOpenAI(cfg.LLMBaseURL, cfg.LLMAPIKey, cfg.LLMModel, nil)
	}
	policy, err := egressPolicy(cfg, secrets["TTS_URL"])
	if err != nil {
		return nil, err
	}
	return engine.New(engine.Options{
		Key: cfg.EngineKey, State: state, Model: model, Embedder: embedder(cfg),
		Concurrency: cfg.EngineConcurrency, Logger: log.With("component", "engine"), Secrets: secrets,
		HTTPClient: policy.Client(60 * time.Second),
		Retry:      engineRetry(cfg), Metrics: reg,
		Lease:    cfg.EngineLease,
		MaxSteps: cfg.EngineMaxSteps, MaxWorkflowDepth: cfg.EngineMaxDepth,
		MaxDuration: cfg.EngineMaxDuration, MaxStepOutput: cfg.EngineMaxOutput,
		// Every instance of a deployment shares the engine key, so each can
		// open the others' sealed checkpoints. Rotating ASTRA's engine key
		// makes the sealed checkpoints of unfinished (e.g. paused)
		// executions unreadable: they fail when resumed.
		CheckpointKey: engine.CheckpointKey(cfg.EngineKey),
	})
}

// embedder is the engine's embedder: the configured OpenAI-compatible
// endpoint, or the offline one (nil).
func embedder(cfg *config.Config) llm.Embedder {
	if cfg.EmbeddingBaseURL == "" {
		return nil
	}
	return llm.NewOpenAIEmbedder(cfg.EmbeddingBaseURL, cfg.EmbeddingAPIKey, cfg.EmbeddingModel, nil)
}

// egressPolicy is what tasks' api_call and speech requests may reach:
// public addresses, what ASTRA_EGRESS_ALLOW opens, and the endpoints the
// operator configured (the model client itself dials the LLM directly).
func egressPolicy(cfg *config.Config, extra ...string) (*egress.Policy, error) {
	p, err := egress.New(cfg.EgressAllow)
	if err != nil {
		return nil, err
	}
	for _, u := range append([]string{cfg.LLMBaseURL, cfg.TTSURL, cfg.JulepBaseURL}, extra...) {
		p.AllowEndpoint(u)
	}
	return p, nil
}

// engineRetry is the embedded engine's policy for transient model and
// api_call failures: the configured attempts and budget, the default backoff.
func engineRetry(cfg *config.Config) retry.Policy {
	p := retry.Default()
	p.Attempts, p.Budget = cfg.EngineRetryAttempts, cfg.EngineRetryMax
	return p
}

// responderTask returns the responder task's id. For the embedded engine it
// first deploys the project (ASTRA_TASKS_DIR when present, else the copy
// built into the binary); a remote Julep is deployed with `astra tasks push`.
func responderTask(ctx context.Context, cfg *config.Config, jc *julep.Client, embedded bool) (string, error) {
	dir := cfg.TasksDir
	if _, err := os.Stat(filepath.Join(dir, taskdef.ManifestName)); err != nil {
		if !embedded {
			return "", fmt.Errorf("ASTRA_TASKS_DIR %q has no %s: the responder task id comes from its lock file", dir, taskdef.ManifestName)
		}
		if dir, err = unpackTasks(cfg.DataDir); err != nil {
			return "", err
		}
	}
	if !embedded {
		return dispatch.TaskIDFromLock(dir)
	}
	p, issues := taskdef.LoadProject(dir)
	if taskdef.HasErrors(issues) || p == nil {
		for _, i := range issues {
			if taskdef.HasErrors([]taskdef.Issue{i}) {
				return "", fmt.Errorf("tasks: %s", i)
			}
		}
		return "", fmt.Errorf("tasks: cannot load %s", dir)
	}
	lock, err := taskdef.ReadLock(p.LockPath())
	if err != nil {
		return "", err
	}
	ids, err := deploy.Sync(ctx, jc, p, lock)
	if err != nil {
		return "", err
	}
	id, ok := ids[dispatch.ResponderTaskPath]
	if !ok {
		return "", fmt.Errorf("tasks: %s has no %s", dir, dispatch.ResponderTaskPath)
	}
	return id, nil
}

// unpackTasks writes the built-in project to the data dir.
func unpackTasks(dataDir string) (string, error) {
	dir := filepath.Join(dataDir, "tasks")
	err := fs.WalkDir(tasks.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		target := filepath.Join(dir, filepath.FromSlash(path))
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		b, err := tasks.FS.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o600)
	})
	if err != nil {
		return "", fmt.Errorf("unpack built-in tasks to %s: %w", dir, err)
	}
	return dir, nil
}

// executionView feeds the dashboard's execution panel.
func executionView(jc *julep.Client) func(context.Context, string) (any, error) {
	return func(ctx context.Context, id string) (any, error) {
		ex, err := jc.GetExecution(ctx, id)
		if err != nil {
			if julep.IsNotFound(err) {
				return nil, responder.Errorf(responder.ENOTFOUND, "Execution not found")
			}
			return nil, responder.Errorf(responder.EUNAVAILABLE, "Julep is unavailable")
		}
		trs, err := jc.ListTransitions(ctx, id)
		if err != nil {
			return nil, responder.Errorf(responder.EUNAVAILABLE, "Julep is unavailable")
		}
		return map[string]any{"execution": ex, "transitions": trs}, nil
	}
}

// opsHandler is what a dispatch-only instance serves: health, metrics and,
// with the embedded engine, the engine.
func opsHandler(readyz, metrics http.Handler, eng *engine.Engine) http.Handler {
	r := chi.NewRouter()
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	r.Method(http.MethodGet, "/readyz", readyz)
	r.Handle("/metrics", metrics)
	if eng != nil {
		r.With(httpserve.NoDeadlinesForStreams).Mount("/julep", http.StripPrefix("/julep", eng.Handler()))
	}
	return r
}

// registerHubMetrics exposes the live stream's counters, read at scrape time.
func registerHubMetrics(reg prometheus.Registerer, hub *stream.Hub) {
	stat := func(f func(stream.Stats) int64) func() float64 {
		return func() float64 { return float64(f(hub.Stats())) }
	}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "astra_stream_subscribers", Help: "Open socket subscriptions."},
			stat(func(s stream.Stats) int64 { return s.Subscribers })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "astra_stream_events_published_total", Help: "Events fanned out to subscribers."},
			stat(func(s stream.Stats) int64 { return s.Published })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "astra_stream_events_duplicate_total", Help: "Events a subscription dropped because it had taken them already (the in-process publisher and another instance's feed both delivered them)."},
			stat(func(s stream.Stats) int64 { return s.Duplicates })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "astra_stream_overflows_total", Help: "Sockets closed because they could not keep up."},
			stat(func(s stream.Stats) int64 { return s.Overflows })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "astra_stream_deltas_repeated_total", Help: "Reply deltas dropped as sent already (relayed in process and read back from the store, or re-read in the feed's window) or as arriving after their answer."},
			stat(func(s stream.Stats) int64 { return s.DeltaRepeats })),
	)
}
