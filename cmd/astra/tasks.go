package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/astra-app/astra/internal/config"
	"github.com/astra-app/astra/internal/deploy"
	"github.com/astra-app/astra/internal/julep"
	"github.com/astra-app/astra/internal/taskdef"
)

func init() { extraCommands = append(extraCommands, newTasksCmd) }

// tasksFlags are shared by the tasks subcommands.
type tasksFlags struct {
	dir      string
	julepURL string
	julepKey string
}

func newTasksCmd(e *env) *cobra.Command {
	f := &tasksFlags{}
	cmd := &cobra.Command{
		Use:   "tasks",
		Short: "Validate, diff, push and list the Julep agents and tasks of tasks/ (like julep sync, with a lock file)",
		Example: "  astra tasks validate\n  astra tasks diff\n  astra tasks push --dry-run\n" +
			"  JULEP_BASE_URL=https://julep.example.com JULEP_API_KEY=... astra tasks push",
		Args: subcommandArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return &usageError{err: errors.New("tasks needs a subcommand: validate, diff, push or list")}
		},
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.dir, "dir", "", "project directory holding julep.yaml (default $ASTRA_TASKS_DIR, else ./tasks)")
	pf.StringVar(&f.julepURL, "julep-url", "", "Julep base URL (default $JULEP_BASE_URL, else the embedded engine of a running astra serve)")
	pf.StringVar(&f.julepKey, "julep-key", "", "Julep API key (default $JULEP_API_KEY, else the embedded engine's key)")
	cmd.AddCommand(newTasksValidateCmd(e, f), newTasksDiffCmd(e, f), newTasksPushCmd(e, f), newTasksListCmd(e, f))
	return cmd
}

func (f *tasksFlags) config(e *env) (*config.Config, error) {
	flags := map[string]string{}
	if f.dir != "" {
		flags["ASTRA_TASKS_DIR"] = f.dir
	}
	if f.julepURL != "" {
		flags["JULEP_BASE_URL"] = f.julepURL
	}
	if f.julepKey != "" {
		flags["JULEP_API_KEY"] = f.julepKey
	}
	return e.loadConfig(flags)
}

// printIssues writes every issue, one line each, and reports whether any is
// an error.
func printIssues(w io.Writer, issues []taskdef.Issue) bool {
	for _, is := range issues {
		fmt.Fprintln(w, is.String())
	}
	return taskdef.HasErrors(issues)
}

type validateReport struct {
	OK     bool            `json:"ok"`
	Files  []validatedFile `json:"files"`
	Issues []taskdef.Issue `json:"issues"`
}

type validatedFile struct {
	File string `json:"file"`
	OK   bool   `json:"ok"`
}

func newTasksValidateCmd(e *env, f *tasksFlags) *cobra.Command {
	out := outputFlag{}
	cmd := &cobra.Command{
		Use:   "validate [files]",
		Short: "Check the manifest and its definitions (or the given files) with the checks push and the engine run",
		Long: "Runs the very checks the embedded engine runs when a task is created (and push runs before it\n" +
			"sends anything): YAML syntax, our task and agent schemas, step kinds (with \"did you mean\"),\n" +
			"expression syntax and undefined names, tools, labels, workflows and input schemas.\n" +
			"Prints \"ok <file>\" per clean file and one line per issue (file:line:column: path: message);\n" +
			"a file with many stops after 50 with \"and N more\". Exits 1 when there is an error (warnings do not fail).",
		Example: "  astra tasks validate\n  astra tasks validate tasks/responder.yaml\n  astra tasks validate -o json",
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			cfg, err := f.config(e)
			if err != nil {
				return err
			}
			if len(args) == 0 {
				args = []string{cfg.TasksDir}
			}
			report := validateReport{OK: true, Files: []validatedFile{}, Issues: []taskdef.Issue{}}
			for _, a := range args {
				var files []string
				var issues []taskdef.Issue
				if st, err := os.Stat(a); (err == nil && st.IsDir()) || filepath.Base(a) == taskdef.ManifestName {
					p, is := taskdef.LoadProject(a)
					issues = is
					if p != nil {
						files = append(files, p.Manifest.File)
						for _, en := range append(p.Agents, p.Tasks...) {
							if en != nil {
								files = append(files, en.File)
							}
						}
					}
				} else {
					en, is := taskdef.LoadFile(a)
					issues = is
					if en != nil {
						files = append(files, en.File)
					}
				}
				bad := map[string]bool{}
				for _, is := range issues {
					if is.Severity == taskdef.SeverityError {
						bad[is.File] = true
					}
				}
				for _, file := range files {
					report.Files = append(report.Files, validatedFile{File: file, OK: !bad[file]})
					if !bad[file] && !out.structured() {
						fmt.Fprintf(e.stdout, "ok %s\n", file)
					}
				}
				report.Issues = append(report.Issues, issues...)
				if taskdef.HasErrors(issues) {
					report.OK = false
				}
				if !out.structured() {
					printIssues(e.stdout, issues)
				}
			}
			if out.structured() {
				if err := out.print(e.stdout, report); err != nil {
					return err
				}
			}
			if !report.OK {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	out.register(cmd)
	return cmd
}

// project reads the configuration, the task project and its lock file.
func (f *tasksFlags) project(e *env) (*config.Config, *taskdef.Project, *taskdef.Lock, error) {
	cfg, err := f.config(e)
	if err != nil {
		return nil, nil, nil, err
	}
	p, err := e.loadProject(cfg.TasksDir)
	if err != nil {
		return nil, nil, nil, err
	}
	lock, err := taskdef.ReadLock(p.LockPath())
	if err != nil {
		return nil, nil, nil, err
	}
	return cfg, p, lock, nil
}

// loadProject loads the project and prints its issues; errors stop the command.
func (e *env) loadProject(dir string) (*taskdef.Project, error) {
	p, issues := taskdef.LoadProject(dir)
	if printIssues(e.stderr, issues) || p == nil {
		return nil, &exitError{code: 1}
	}
	return p, nil
}

// julepClient connects to JULEP_BASE_URL (or --julep-url) or, when neither
// is set, to the embedded engine of a running `astra serve`.
func (e *env) julepClient(cfg *config.Config) (*julep.Client, string, error) {
	base, key := cfg.JulepBaseURL, cfg.JulepAPIKey
	if base == "" {
		key = cfg.EngineKey
		if key == "" {
			b, err := os.ReadFile(filepath.Join(cfg.DataDir, "engine-key"))
			if err != nil {
				return nil, "", &usageError{err: fmt.Errorf("no Julep endpoint: set JULEP_BASE_URL and JULEP_API_KEY (or pass --julep-url and --julep-key); "+
					"to use the embedded engine, start `astra serve` first (it writes its key to %s) or set ASTRA_ENGINE_KEY",
					filepath.Join(cfg.DataDir, "engine-key"))}
			}
			key = strings.TrimSpace(string(b))
		}
		base = "http://" + dialAddr(cfg.Addr) + "/julep"
	}
	c, err := julep.New(base, key, julep.WithAuthHeader(cfg.JulepAuthHeader),
		julep.WithRetry(julep.RetryPolicy{MaxAttempts: 2, BaseDelay: 200 * time.Millisecond, MaxDelay: time.Second, MaxRetryAfter: 5 * time.Second}))
	if err != nil {
		return nil, "", &usageError{err: err}
	}
	return c, base, nil
}

// dialAddr turns a listen address into one to connect to.
func dialAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// remoteErr adds what to check when Julep cannot be reached at all.
func remoteErr(base string, err error) error {
	if julep.StatusCode(err) == 0 && julep.IsTransient(err) {
		return fmt.Errorf("cannot reach Julep at %s: %w (is `astra serve` running? else set JULEP_BASE_URL or --julep-url)", base, err)
	}
	return err
}

// ---- push

type planned = deploy.Planned

type pushRow struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	Path   string `json:"path"`
	ID     string `json:"id"`
	Result string `json:"result"`
}

func newTasksPushCmd(e *env, f *tasksFlags) *cobra.Command {
	var dryRun, force bool
	out := outputFlag{}
	cmd := &cobra.Command{
		Use:   "push",
		Short: "Create or update every agent and task that differs from the live remote",
		Long: "Validates the project, reads each agent's and task's live remote copy and sends those that are\n" +
			"missing or differ (a change made on the remote by someone else included) with create-or-update\n" +
			"under the lock file's stable ids (new entries get a fresh id), then rewrites julep-lock.json.\n" +
			"--dry-run reads the remote and prints exactly what push would send, sending and writing nothing;\n" +
			"--force sends every entry even when the remote already matches.",
		Example: "  astra tasks push --dry-run\n  astra tasks push\n  astra tasks push --force -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.check(); err != nil {
				return err
			}
			cfg, p, lock, err := f.project(e)
			if err != nil {
				return err
			}
			c, base, err := e.julepClient(cfg)
			if err != nil {
				return err
			}
			agents, tasks := deploy.Plan(p, lock)
			changes, err := compareAll(cmd.Context(), c, base, append(agents, tasks...))
			if err != nil {
				return err
			}
			if dryRun {
				var rows []pushRow
				for _, ch := range changes {
					result := map[string]string{deploy.ActionCreate: "would create", deploy.ActionUpdate: "would update", deploy.ActionNone: "unchanged"}[ch.Action]
					if force && ch.Action == deploy.ActionNone {
						result = "would update (forced)"
					}
					rows = append(rows, rowOf(ch.Planned, result))
				}
				if out.structured() {
					return out.print(e.stdout, map[string]any{"dry_run": true, "entries": rows})
				}
				printPushTable(e.stdout, rows)
				fmt.Fprintln(e.stdout, "dry run: nothing sent, lock not written")
				return nil
			}
			return e.push(cmd.Context(), c, base, p, lock, changes, force, out)
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "show what push would send (it reads the remote); send and write nothing")
	cmd.Flags().BoolVar(&force, "force", false, "send every agent and task, even those the remote already has")
	out.register(cmd)
	return cmd
}

func rowOf(pl planned, result string) pushRow {
	return pushRow{Name: pl.Entry.Name(), Kind: pl.Entry.Kind, Path: pl.Entry.Path, ID: pl.ID, Result: result}
}

// compareAll reads the live remote copy of every entry, in order.
func compareAll(ctx context.Context, c *julep.Client, base string, pls []planned) ([]deploy.Change, error) {
	var out []deploy.Change
	for _, pl := range pls {
		ch, err := deploy.Compare(ctx, c, pl)
		if err != nil {
			return nil, fmt.Errorf("read remote %s %s: %w", pl.Entry.Kind, pl.Entry.Path, remoteErr(base, err))
		}
		out = append(out, ch)
	}
	return out, nil
}

func (e *env) push(ctx context.Context, c *julep.Client, base string, p *taskdef.Project, lock *taskdef.Lock, changes []deploy.Change, force bool, out outputFlag) error {
	var rows []pushRow
	var failure error
	record := false
	now := time.Now()
	for _, ch := range changes {
		pl := ch.Planned
		if failure != nil {
			rows = append(rows, rowOf(pl, "skipped"))
			continue
		}
		result := map[string]string{deploy.ActionCreate: "created", deploy.ActionUpdate: "updated", deploy.ActionNone: "unchanged"}[ch.Action]
		if ch.Action != deploy.ActionNone || force {
			if err := deploy.Send(ctx, c, pl); err != nil {
				// Tasks need their agents: stop at the first failure.
				failure = fmt.Errorf("push %s %s: %w", pl.Entry.Kind, pl.Entry.Path, remoteErr(base, err))
				rows = append(rows, rowOf(pl, "failed"))
				continue
			}
			if ch.Action == deploy.ActionNone {
				result = "updated"
			}
		}
		rows = append(rows, rowOf(pl, result))
		// The lock follows what the remote now holds, also when only the
		// lock was behind (the remote already matched).
		if le := lock.Entry(pl.Entry.Kind, pl.Entry.Path); result != "unchanged" || le == nil || le.RevisionHash != pl.Entry.Hash ||
			pl.Entry.Kind == taskdef.KindTask && lock.TaskAgent(pl.ID) != pl.AgentID {
			lock.Record(pl.Entry.Kind, pl.Entry.Path, pl.ID, pl.Entry.Hash, now)
			if pl.Entry.Kind == taskdef.KindTask {
				lock.RelateTask(pl.ID, pl.AgentID)
			}
			record = true
		}
	}
	if out.structured() {
		if err := out.print(e.stdout, map[string]any{"dry_run": false, "entries": rows}); err != nil {
			return err
		}
	} else {
		printPushTable(e.stdout, rows)
	}
	// Keep what did succeed even after a failure, so ids stay stable.
	if record {
		if err := taskdef.WriteLock(p.LockPath(), lock); err != nil {
			return err
		}
	}
	return failure
}

func printPushTable(w io.Writer, rows []pushRow) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKIND\tID\tRESULT")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Name, r.Kind, r.ID, r.Result)
	}
	tw.Flush()
}

// ---- diff

type diffEntry struct {
	Kind   string `json:"kind"`
	Path   string `json:"path"`
	Name   string `json:"name"`
	ID     string `json:"id"`
	Action string `json:"action"`
	Diff   string `json:"diff,omitempty"`
}

func newTasksDiffCmd(e *env, f *tasksFlags) *cobra.Command {
	out := outputFlag{}
	cmd := &cobra.Command{
		Use:   "diff",
		Short: "Show what push would change: the local files against the live remote definitions",
		Long: "Reads each agent's and task's live remote copy and prints a unified diff (remote -> local) for\n" +
			"every one that is missing or differs, whatever the lock file says.\n" +
			"Exits 0 when the remote matches, 1 when there are differences, 2 on an error (as kubectl diff).",
		Example: "  astra tasks diff\n  astra tasks diff -o json\n  astra tasks diff --julep-url http://localhost:8080/julep --julep-key $KEY",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.check(); err != nil {
				return err
			}
			cfg, p, lock, err := f.project(e)
			if err != nil {
				return asCode2(err)
			}
			c, base, err := e.julepClient(cfg)
			if err != nil {
				return err
			}
			agents, tasks := deploy.Plan(p, lock)
			changes, err := compareAll(cmd.Context(), c, base, append(agents, tasks...))
			if err != nil {
				return asCode2(err)
			}
			var entries []diffEntry
			changed := 0
			for _, ch := range changes {
				d, err := ch.Diff()
				if err != nil {
					return &codedError{code: 2, err: err}
				}
				entries = append(entries, diffEntry{Kind: ch.Entry.Kind, Path: ch.Entry.Path, Name: ch.Entry.Name(), ID: ch.ID, Action: ch.Action, Diff: d})
				if ch.Action == deploy.ActionNone {
					continue
				}
				changed++
				if !out.structured() {
					state := map[string]string{deploy.ActionCreate: "not on the remote (push creates it)", deploy.ActionUpdate: "differs from the remote (push updates it)"}[ch.Action]
					fmt.Fprintf(e.stdout, "# %s %s (%s, id %s): %s\n%s", ch.Entry.Kind, ch.Entry.Path, ch.Entry.Name(), ch.ID, state, d)
				}
			}
			if out.structured() {
				if err := out.print(e.stdout, map[string]any{"changed": changed, "entries": entries}); err != nil {
					return err
				}
			} else if changed == 0 {
				fmt.Fprintln(e.stdout, "no changes: the remote definitions match the local files")
			}
			if changed > 0 {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	out.register(cmd)
	return cmd
}

// asCode2 makes a failure exit 2 (diff's "error", as opposed to 1,
// "differences"), keeping an already printed one silent.
func asCode2(err error) error {
	var ee *exitError
	if errors.As(err, &ee) {
		return &exitError{code: 2}
	}
	var ue *usageError
	if errors.As(err, &ue) {
		return err
	}
	return &codedError{code: 2, err: err}
}

// ---- list

type listedEntry struct {
	Kind    string    `json:"kind"`
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	AgentID string    `json:"agent_id,omitempty"`
	Updated time.Time `json:"updated_at"`
	Local   string    `json:"local_path,omitempty"`
}

func newTasksListCmd(e *env, f *tasksFlags) *cobra.Command {
	out := outputFlag{}
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List the remote agents and their tasks (marking those this project's lock knows)",
		Example: "  astra tasks list\n  astra tasks list -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.check(); err != nil {
				return err
			}
			cfg, err := f.config(e)
			if err != nil {
				return err
			}
			c, base, err := e.julepClient(cfg)
			if err != nil {
				return err
			}
			local := map[string]string{} // id -> path
			if lock, err := taskdef.ReadLock(filepath.Join(cfg.TasksDir, taskdef.LockName)); err == nil {
				for _, le := range lock.Agents {
					local[le.ID] = le.Path
				}
				for _, le := range lock.Tasks {
					local[le.ID] = le.Path
				}
			}
			agents, err := c.ListAgents(cmd.Context())
			if err != nil {
				return fmt.Errorf("list agents: %w", remoteErr(base, err))
			}
			entries := []listedEntry{}
			for _, a := range agents {
				entries = append(entries, listedEntry{Kind: "agent", ID: a.Id, Name: a.Name, Updated: a.UpdatedAt.UTC(), Local: local[a.Id]})
				ts, err := c.ListTasks(cmd.Context(), a.Id)
				if err != nil {
					return fmt.Errorf("list tasks of agent %s: %w", a.Id, remoteErr(base, err))
				}
				for _, t := range ts {
					entries = append(entries, listedEntry{Kind: "task", ID: t.Id, Name: t.Name, AgentID: a.Id, Updated: t.UpdatedAt.UTC(), Local: local[t.Id]})
				}
			}
			if out.structured() {
				return out.print(e.stdout, entries)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "KIND\tID\tNAME\tUPDATED\tLOCAL")
			for _, en := range entries {
				indent := ""
				if en.Kind == "task" {
					indent = "  "
				}
				fmt.Fprintf(tw, "%s%s\t%s\t%s\t%s\t%s\n", indent, en.Kind, en.ID, en.Name, en.Updated.Format(time.RFC3339), orDash(en.Local))
			}
			if len(agents) == 0 {
				fmt.Fprintln(tw, "(no agents)")
			}
			return tw.Flush()
		},
	}
	out.register(cmd)
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
