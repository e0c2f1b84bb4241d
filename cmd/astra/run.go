package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/astra-app/astra/internal/config"
	"github.com/astra-app/astra/internal/julep"
	"github.com/astra-app/astra/internal/responder"
	"github.com/astra-app/astra/internal/store"
	"github.com/astra-app/astra/internal/taskdef"
)

func init() { extraCommands = append(extraCommands, newRunCmd, newExecutionsCmd) }

// julepFlags are the connection flags of run and executions.
type julepFlags struct {
	url, key, dir string
}

func (f *julepFlags) add(cmd *cobra.Command) {
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.url, "julep-url", "", "Julep base URL (default $JULEP_BASE_URL, else the embedded engine of a running astra serve)")
	pf.StringVar(&f.key, "julep-key", "", "Julep API key (default $JULEP_API_KEY, else the embedded engine's key)")
	pf.StringVar(&f.dir, "dir", "", "project directory whose lock file names tasks (default $ASTRA_TASKS_DIR, else ./tasks)")
}

// connect loads the configuration with the flags over it and returns a
// Julep client, its base URL (for messages) and the configuration.
func (f *julepFlags) connect(e *env) (*julep.Client, string, *config.Config, error) {
	flags := map[string]string{}
	if f.url != "" {
		flags["JULEP_BASE_URL"] = f.url
	}
	if f.key != "" {
		flags["JULEP_API_KEY"] = f.key
	}
	if f.dir != "" {
		flags["ASTRA_TASKS_DIR"] = f.dir
	}
	cfg, err := e.loadConfig(flags)
	if err != nil {
		return nil, "", nil, err
	}
	c, base, err := e.julepClient(cfg)
	if err != nil {
		return nil, "", nil, err
	}
	return c, base, cfg, nil
}

func newRunCmd(e *env) *cobra.Command {
	f := &julepFlags{}
	var input, user string
	var follow bool
	out := outputFlag{}
	cmd := &cobra.Command{
		Use:   "run TASK [--user EMAIL] --input JSON [--follow]",
		Short: "Start an execution of a task (an id, or a task name or path from the lock file)",
		Long: "Starts an execution and prints its id. With --follow, waits for it to end (a spinner on a\n" +
			"terminal, one line per status otherwise, each once), prints the output as JSON, and exits 1\n" +
			"when it failed or was cancelled. --input takes JSON, or @file to read it from a file.\n" +
			"--user EMAIL finds the person among the signed-up users (the database astra serve uses), makes\n" +
			"sure their Julep user exists under its deterministic id (as the dispatcher does) and sets the\n" +
			"input's user_id to it, so a task that reads the person's memory runs as it would for them.",
		Example: "  # as a person who has signed in once (on a fresh machine: the dev login, with any email)\n" +
			"  astra run responder --user you@example.com --input '{\"message\":\"hello\",\"outbox_id\":\"cli-1\"}' --follow\n" +
			"  astra run \"Astra responder\" --input @input.json -o json --follow",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			in, err := readInput(input)
			if err != nil {
				return &usageError{err: err}
			}
			c, base, cfg, err := f.connect(e)
			if err != nil {
				return err
			}
			taskID, err := resolveTask(cfg.TasksDir, args[0])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if user != "" {
				id, err := e.julepUserFor(ctx, cfg, c, base, user)
				if err != nil {
					return err
				}
				in["user_id"] = id
			}
			x, err := c.CreateExecution(ctx, taskID, in, map[string]any{"source": "astra-cli"})
			if err != nil {
				return fmt.Errorf("start task %s: %w", taskID, remoteErr(base, err))
			}
			if !follow {
				if out.structured() {
					return out.print(e.stdout, x)
				}
				fmt.Fprintln(e.stdout, x.Id)
				return nil
			}
			return e.followExecution(ctx, c, base, x.Id, out)
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&input, "input", "{}", "the execution's input: a JSON object, or @file")
	cmd.Flags().StringVar(&user, "user", "", "run as this signed-up person (email): sets the input's user_id to their Julep user")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "wait for the execution to end and print its output")
	out.register(cmd)
	return cmd
}

// julepUserFor resolves a person's email to their Julep user: the auth
// user in the configured store, then the deterministic Julep id the
// dispatcher gives them (created or updated here, which is harmless).
func (e *env) julepUserFor(ctx context.Context, cfg *config.Config, c *julep.Client, base, email string) (string, error) {
	st, _, err := store.Open(ctx, cfg)
	if err != nil {
		return "", fmt.Errorf("--user: open the user store: %w", err)
	}
	defer st.Close()
	u, err := st.UserByEmail(ctx, strings.TrimSpace(email))
	if responder.IsNotFound(err) {
		where := "MONGODB_URI"
		if cfg.MongoURI == "" {
			where = filepath.Join(cfg.DataDir, store.SQLiteFile)
		}
		return "", &usageError{err: fmt.Errorf("--user %s: no such user in %s (they must have signed in once; check --data-dir or MONGODB_URI)", email, where)}
	}
	if err != nil {
		return "", fmt.Errorf("--user %s: %w", email, err)
	}
	id := u.JulepUserID
	if id == "" {
		id = responder.JulepUserID(u.ID)
	}
	name := strings.TrimSpace(u.Name)
	if name == "" {
		name = "Astra user"
	}
	if _, err := c.CreateOrUpdateUser(ctx, id, julep.UserInput{Name: name, Metadata: julep.Metadata{"astra_user_id": u.ID}}); err != nil {
		return "", fmt.Errorf("--user %s: create or update Julep user %s: %w", email, id, remoteErr(base, err))
	}
	return id, nil
}

// readInput parses --input: a JSON object, or @path to one.
func readInput(s string) (map[string]any, error) {
	raw := []byte(s)
	if path, ok := strings.CutPrefix(s, "@"); ok {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("--input %s: %w", s, err)
		}
		raw = b
	}
	var in map[string]any
	if err := json.Unmarshal(raw, &in); err != nil || in == nil {
		return nil, fmt.Errorf("--input must be a JSON object (or @file holding one): %v", orText(err, "got null"))
	}
	return in, nil
}

func orText(err error, s string) string {
	if err != nil {
		return err.Error()
	}
	return s
}

// resolveTask takes a task id, or the name or definition path of a task
// of the project in dir, whose id the lock file records.
func resolveTask(dir, arg string) (string, error) {
	if uuid.Validate(arg) == nil {
		return arg, nil
	}
	p, _ := taskdef.LoadProject(dir)
	if p == nil {
		return "", &usageError{err: fmt.Errorf("%q is not a task id, and %s has no readable %s to look names up in", arg, dir, taskdef.ManifestName)}
	}
	lock, err := taskdef.ReadLock(p.LockPath())
	if err != nil {
		return "", err
	}
	var known []string
	for _, t := range p.Tasks {
		known = append(known, fmt.Sprintf("%q", t.Name()))
		stem := strings.TrimSuffix(t.Path, filepath.Ext(t.Path))
		if !strings.EqualFold(t.Name(), arg) && t.Path != arg && stem != arg {
			continue
		}
		id, ok := lock.ID(taskdef.KindTask, t.Path)
		if !ok {
			return "", &usageError{err: fmt.Errorf("task %q (%s) has not been pushed: run `astra tasks push` first", t.Name(), t.Path)}
		}
		return id, nil
	}
	slices.Sort(known)
	return "", &usageError{err: fmt.Errorf("no task %q in %s (tasks: %s)", arg, dir, strings.Join(known, ", "))}
}

// followExecution waits for the execution to end, showing progress, then
// prints its output (or error).
func (e *env) followExecution(ctx context.Context, c *julep.Client, base, id string, out outputFlag) error {
	var p *progress
	if !out.structured() {
		fmt.Fprintf(e.stdout, "execution %s started\n", id)
		p = newProgress(e.stdout)
	} else {
		p = newProgress(io.Discard)
	}
	defer p.stop()
	x, err := waitExecution(ctx, c, id, func(s julep.ExecutionStatus, transitions int) { p.update(s, transitions) })
	p.stop()
	if err != nil {
		return fmt.Errorf("follow execution %s: %w", id, remoteErr(base, err))
	}
	if out.structured() {
		if err := out.print(e.stdout, x); err != nil {
			return err
		}
	} else {
		// Each status is printed once: on a terminal the spinner is gone,
		// so say the end; otherwise only if it was not a line already.
		if p.tty || !p.printed(x.Status) {
			fmt.Fprintf(e.stdout, "status: %s\n", x.Status)
		}
		if x.Status == julep.StatusSucceeded {
			b, err := json.MarshalIndent(x.Output, "", "  ")
			if err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, string(b))
		}
	}
	if x.Status != julep.StatusSucceeded {
		fmt.Fprintf(e.stderr, "execution %s %s: %s\n", x.Id, x.Status, orDash(x.Error))
		return &exitError{code: 1}
	}
	return nil
}

// waitExecution follows the status stream (polling when the server has
// none, reconnecting after interruptions) until the execution is terminal.
func waitExecution(ctx context.Context, c *julep.Client, id string, onStatus func(julep.ExecutionStatus, int)) (*julep.Execution, error) {
	poll := false
	delay := 200 * time.Millisecond
	for {
		if !poll {
			err := c.StreamStatus(ctx, id, func(ev julep.StatusEvent) error {
				onStatus(ev.Status, ev.TransitionCount)
				return nil
			})
			switch {
			case err == nil:
			case errors.Is(err, julep.ErrNotSupported):
				poll = true
			case julep.IsTransient(err):
			default:
				return nil, err
			}
		}
		x, err := c.GetExecution(ctx, id)
		if err != nil && !julep.IsTransient(err) {
			return nil, err
		}
		if err == nil {
			onStatus(x.Status, x.TransitionCount)
			if julep.IsTerminal(x.Status) {
				return x, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, 2*time.Second)
	}
}

// progress shows an execution's status: a spinner redrawn in place on a
// terminal, one plain line per change otherwise.
type progress struct {
	w        io.Writer
	tty      bool
	mu       sync.Mutex
	status   julep.ExecutionStatus
	count    int
	lines    []julep.ExecutionStatus // statuses printed as plain lines
	start    time.Time
	done     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w, start: time.Now(), done: make(chan struct{})}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.tty = true
		p.wg.Add(1)
		go p.spin()
	}
	return p
}

func (p *progress) update(s julep.ExecutionStatus, transitions int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	changed := s != p.status
	p.status, p.count = s, transitions
	if changed && !p.tty {
		// One line per state: a status stream and the final read repeat
		// the same one, and transition counts are the spinner's detail.
		p.lines = append(p.lines, s)
		fmt.Fprintf(p.w, "status: %s\n", s)
	}
}

// printed reports whether a plain line already said s last.
func (p *progress) printed(s julep.ExecutionStatus) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.lines) > 0 && p.lines[len(p.lines)-1] == s
}

var spinnerFrames = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

func (p *progress) spin() {
	defer p.wg.Done()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-p.done:
			fmt.Fprint(p.w, "\r\033[K")
			return
		case <-t.C:
		}
		p.mu.Lock()
		fmt.Fprintf(p.w, "\r\033[K%s %s (%d transitions) %s", spinnerFrames[i%len(spinnerFrames)], orDash(string(p.status)),
			p.count, time.Since(p.start).Round(100*time.Millisecond))
		p.mu.Unlock()
	}
}

func (p *progress) stop() {
	p.stopOnce.Do(func() { close(p.done) })
	p.wg.Wait()
}
