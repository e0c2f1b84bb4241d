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

// codedError is a failure with a specific exit code that main still prints
// (tasks diff: 1 means differences, 2 an error).
type codedError struct {
	code int
	err  error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

func exitCode(err error) int {
	var ue *usageError
	if errors.As(err, &ue) {
		return 2
	}
	var ce *codedError
	if errors.As(err, &ce) {
		return ce.code
	}
	var se *config.SettingError
	if errors.As(err, &se) {
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
		Use:   "astra",
		Short: "Astra's responder: chat API, live stream, dispatcher and Julep task tools",
		Example: "  astra serve                       # the whole product on http://localhost:8080\n" +
			"  astra tasks push --dry-run        # what a deploy of tasks/ would change\n" +
			"  astra run responder --user you@example.com --input '{\"message\":\"hi\",\"outbox_id\":\"cli-1\"}' --follow\n" +
			"  astra executions list -o json",
		Version:                    version,
		SilenceUsage:               true,
		SilenceErrors:              true,
		SuggestionsMinimumDistance: 2,
	}
	root.SetVersionTemplate("astra {{.Version}}\n")
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
	if c, _, err := root.Find([]string{"serve"}); err == nil && c.Example == "" {
		c.Example = "  astra serve\n  astra serve --addr 0.0.0.0:8080 --roles api\n" +
			"  MONGODB_URI=mongodb://db/astra BETTER_AUTH_SECRET=... astra serve --roles dispatch"
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

// subcommandArgs is the Args of a command group: an argument is a
// subcommand that does not exist, so say so and suggest the nearest one.
func subcommandArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2
	}
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %q?)", s[0])
	} else {
		var names []string
		for _, c := range cmd.Commands() {
			if c.IsAvailableCommand() {
				names = append(names, c.Name())
			}
		}
		msg += " (commands: " + strings.Join(names, ", ") + ")"
	}
	return &usageError{err: errors.New(msg)}
}

func newVersionCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the version",
		Example: "  astra version\n  astra --version",
		Args:    cobra.NoArgs,
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
	names := map[string]string{}
	for k := range flags {
		if f, ok := settingFlags[k]; ok {
			names[k] = f
		}
	}
	cfg, err := config.LoadFlags(look, environ, names)
	if err != nil {
		return nil, &usageError{err: err}
	}
	return cfg, nil
}

// settingFlags are the flags that set a setting, so an error about a value
// given by flag names the flag.
var settingFlags = map[string]string{
	"ASTRA_ADDR": "addr", "ASTRA_DATA_DIR": "data-dir", "ASTRA_ROLES": "roles", "ASTRA_LOG_LEVEL": "log-level",
	"JULEP_BASE_URL": "julep-url", "JULEP_API_KEY": "julep-key", "ASTRA_TASKS_DIR": "dir",
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
