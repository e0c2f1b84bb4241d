package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/astra-app/astra/internal/engine"
	"github.com/astra-app/astra/internal/engine/sqlitestate"
	"github.com/astra-app/astra/internal/httpserve"
	"github.com/astra-app/astra/internal/llm"
	"github.com/astra-app/astra/internal/store/sqlite"
)

func init() { extraCommands = append(extraCommands, newEngineCmd) }

// newEngineCmd serves the embedded Julep-compatible engine alone, for task
// authors who want to run tasks locally with any Julep v1 client.
func newEngineCmd(e *env) *cobra.Command {
	var addr, dataDir string
	cmd := &cobra.Command{
		Use:   "engine",
		Short: "Serve the embedded Julep v1-compatible engine alone",
		Long: `Serve the embedded Julep v1-compatible engine at the root of --addr.

The API key is ASTRA_ENGINE_KEY, or one generated and kept in the data
directory (file engine-key). Send it as "Authorization: Bearer <key>" or
"X-Auth-Key: <key>". The model is the OpenAI-compatible endpoint named by
ASTRA_LLM_BASE_URL / ASTRA_LLM_API_KEY / ASTRA_LLM_MODEL, or an offline model
that says it is offline. Docs are embedded through ASTRA_EMBEDDING_BASE_URL /
_API_KEY / _MODEL, or a deterministic offline embedder. State lives in
engine_* tables of <data-dir>/astra.db.`,
		Example: "  astra engine --addr 127.0.0.1:9090\n" +
			"  curl -H \"Authorization: Bearer $(cat .astra/engine-key)\" http://127.0.0.1:9090/agents\n" +
			"  astra tasks push --julep-url http://127.0.0.1:9090 --julep-key \"$(cat .astra/engine-key)\"",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			flags := map[string]string{}
			if cmd.Flags().Changed("addr") {
				flags["ASTRA_ADDR"] = addr
			}
			if cmd.Flags().Changed("data-dir") {
				flags["ASTRA_DATA_DIR"] = dataDir
			}
			cfg, err := e.loadConfig(flags)
			if err != nil {
				return err
			}
			log := e.logger(cfg.LogLevel)
			ctx := cmd.Context()
			if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
				return fmt.Errorf("data directory %q: %w", cfg.DataDir, err)
			}
			// The key is ASTRA_ENGINE_KEY or the one kept in the data dir,
			// where the CLI finds it; only its path is ever printed.
			keyFile, generated, err := cfg.EnsureEngineKey()
			if err != nil {
				return err
			}
			key := cfg.EngineKey
			switch {
			case keyFile == "":
				fmt.Fprintln(e.stderr, "astra engine: API key from ASTRA_ENGINE_KEY")
			case generated:
				fmt.Fprintf(e.stderr, "astra engine: generated an API key and kept it in %s (mode 0600)\n", keyFile)
			default:
				fmt.Fprintf(e.stderr, "astra engine: API key in %s\n", keyFile)
			}
			st, err := sqlite.Open(ctx, filepath.Join(cfg.DataDir, "astra.db"))
			if err != nil {
				return err
			}
			defer st.Close()
			state, err := sqlitestate.New(ctx, st)
			if err != nil {
				return err
			}
			model := llm.Offline()
			if cfg.LLMBaseURL != "" {
				model = llm.NewOpenAI(cfg.LLMBaseURL, cfg.LLMAPIKey, cfg.LLMModel, nil)
			}
			policy, err := egressPolicy(cfg, cfg.Secrets["TTS_URL"])
			if err != nil {
				return err
			}
			eng, err := engine.New(engine.Options{Key: key, State: state, Model: model, Embedder: embedder(cfg),
				Concurrency: cfg.EngineConcurrency, Logger: log, Secrets: cfg.Secrets,
				HTTPClient: policy.Client(60 * time.Second), Retry: engineRetry(cfg),
				MaxSteps: cfg.EngineMaxSteps, MaxWorkflowDepth: cfg.EngineMaxDepth,
				MaxDuration: cfg.EngineMaxDuration, MaxStepOutput: cfg.EngineMaxOutput,
				// Derived from the API key, which every instance shares; a
				// new key (a generated one-off key, or a rotation) makes
				// sealed checkpoints of unfinished executions unreadable.
				CheckpointKey: engine.CheckpointKey(key)})
			if err != nil {
				return err
			}
			if err := eng.Start(ctx); err != nil {
				return err
			}
			defer eng.Close()
			ln, err := net.Listen("tcp", cfg.Addr)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
			}
			srv := httpserve.New(httpserve.NoDeadlinesForStreams(eng.Handler()), httpserve.Options{
				ReadTimeout: cfg.ReadTimeout, IdleTimeout: cfg.IdleTimeout, MaxConnections: cfg.MaxConnections, Logger: log,
			})
			log.Info("astra engine: serving", "addr", ln.Addr().String(), "data_dir", cfg.DataDir,
				"offline_model", cfg.LLMBaseURL == "")
			fmt.Fprintf(e.stdout, "astra engine listening on http://%s\n", ln.Addr())
			errc := make(chan error, 1)
			go func() { errc <- srv.Serve(ln) }()
			select {
			case err := <-errc:
				if !errors.Is(err, http.ErrServerClosed) {
					return err
				}
				return nil
			case <-ctx.Done():
			}
			// Close the engine first: it ends the SSE streams Shutdown would
			// wait for, and leaves running executions resumable.
			eng.Close()
			sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
			defer cancel()
			_ = srv.Shutdown(sctx)
			return nil
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "", "listen address (ASTRA_ADDR, default 127.0.0.1:8080)")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "data directory (ASTRA_DATA_DIR, default .astra)")
	return cmd
}
