package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/joho/godotenv"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/astra-app/astra/internal/config"
	"github.com/astra-app/astra/internal/telemetry"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// env is what every command gets from run: no command reads globals, so tests
// run the real commands in parallel with their own environment.
type env struct {
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
}

// usageError marks a bad invocation (exit code 2).
type usageError struct {
	err     error
	printed bool
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// exitError carries a specific exit code with an already-reported failure.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func exitCode(err error) int {
	var ue *usageError
	if errors.As(err, &ue) {
		return 2
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

// run is the whole program; main only calls it.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	e := &env{getenv: getenv, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "astra",
		Short:         "Astra's responder: chat API, live stream, dispatcher and Julep task tools",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &usageError{err: err}
	})
	root.AddCommand(
		newServeCmd(e),
		newVersionCmd(e),
	)
	for _, add := range extraCommands {
		root.AddCommand(add(e))
	}
	err := root.ExecuteContext(ctx)
	if err != nil && isUsage(err) {
		return &usageError{err: err}
	}
	return err
}

// extraCommands lets each command file register itself (tasks, run,
// executions, engine) without every helper editing this file.
var extraCommands []func(*env) *cobra.Command

func isUsage(err error) bool {
	var ue *usageError
	if errors.As(err, &ue) {
		return true
	}
	msg := err.Error()
	return strings.HasPrefix(msg, "unknown command") || strings.HasPrefix(msg, "unknown flag") ||
		strings.Contains(msg, "accepts ") && strings.Contains(msg, " arg(s), received ") ||
		strings.HasPrefix(msg, "required flag")
}

func newVersionCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := io.WriteString(e.stdout, "astra "+version+"\n")
			return err
		},
	}
}

// loadConfig layers flags over the environment over a .env file in the
// working directory, then checks everything at once.
func (e *env) loadConfig(flags map[string]string) (*config.Config, error) {
	dotenv, err := godotenv.Read(".env")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, &usageError{err: errors.New(".env: " + err.Error())}
	}
	look := config.Layered(config.Map(flags), config.Getenv(e.getenv), config.Map(dotenv))
	var environ []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "ASTRA_SECRET_") {
			environ = append(environ, k+"="+e.getenv(k))
		}
	}
	for k, v := range dotenv {
		if strings.HasPrefix(k, "ASTRA_SECRET_") && e.getenv(k) == "" {
			environ = append(environ, k+"="+v)
		}
	}
	cfg, err := config.Load(look, environ)
	if err != nil {
		return nil, &usageError{err: err}
	}
	return cfg, nil
}

// logger logs text to a terminal and JSON otherwise.
func (e *env) logger(level string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv, ReplaceAttr: telemetry.ReplaceAttr}
	if f, ok := e.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return slog.New(telemetry.LogHandler(slog.NewTextHandler(e.stderr, opts)))
	}
	return slog.New(telemetry.LogHandler(slog.NewJSONHandler(e.stderr, opts)))
}
