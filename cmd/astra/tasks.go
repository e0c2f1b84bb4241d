package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pmezard/go-difflib/difflib"
	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

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
		Args:  cobra.NoArgs,
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

func newTasksValidateCmd(e *env, f *tasksFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "validate [files]",
		Short: "Check the manifest and its definitions (or the given files) as Julep checks them at create",
		Long: "Checks YAML syntax, our task and agent schemas, step kinds, expressions, tools, labels, workflows\n" +
			"and input schemas. Prints \"ok <file>\" per clean file and one line per issue\n" +
			"(file:line:column: path: message); exits 1 when there is an error (warnings do not fail).",
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := f.config(e)
			if err != nil {
				return err
			}
			if len(args) == 0 {
				args = []string{cfg.TasksDir}
			}
			failed := false
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
					if !bad[file] {
						fmt.Fprintf(e.stdout, "ok %s\n", file)
					}
				}
				if printIssues(e.stdout, issues) {
					failed = true
				}
			}
			if failed {
				return &exitError{code: 1}
			}
			return nil
		},
	}
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
	name, kind, id, result string
}

func newTasksPushCmd(e *env, f *tasksFlags) *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "push",
		Short: "Create or update changed agents, then tasks, under the lock file's stable ids",
		Long: "Validates the project, then sends each agent and task whose revision hash differs from\n" +
			"julep-lock.json with create-or-update (new entries get a fresh id), and rewrites the lock.\n" +
			"Unchanged entries are only checked to exist. --dry-run sends nothing and writes nothing.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, p, lock, err := f.project(e)
			if err != nil {
				return err
			}
			agents, tasks := deploy.Plan(p, lock)
			if dryRun {
				var rows []pushRow
				for _, pl := range append(agents, tasks...) {
					result := map[string]string{"new": "would create", "changed": "would update", "unchanged": "unchanged"}[pl.State]
					rows = append(rows, pushRow{pl.Entry.Name(), pl.Entry.Kind, pl.ID, result})
				}
				printPushTable(e.stdout, rows)
				fmt.Fprintln(e.stdout, "dry run: nothing sent, lock not written")
				return nil
			}
			c, base, err := e.julepClient(cfg)
			if err != nil {
				return err
			}
			return e.push(cmd.Context(), c, base, p, lock, agents, tasks)
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "show what would be pushed; send nothing")
	return cmd
}

func (e *env) push(ctx context.Context, c *julep.Client, base string, p *taskdef.Project, lock *taskdef.Lock, agents, tasks []planned) error {
	var rows []pushRow
	var failure error
	synced := 0
	now := time.Now()
	send := func(pl planned) {
		result, err := deploy.Push(ctx, c, pl, false)
		if err != nil {
			failure = fmt.Errorf("push %s %s: %w", pl.Entry.Kind, pl.Entry.Path, remoteErr(base, err))
			rows = append(rows, pushRow{pl.Entry.Name(), pl.Entry.Kind, pl.ID, "failed"})
			return
		}
		rows = append(rows, pushRow{pl.Entry.Name(), pl.Entry.Kind, pl.ID, result})
		if result != "unchanged" {
			lock.Record(pl.Entry.Kind, pl.Entry.Path, pl.ID, pl.Entry.Hash, now)
			if pl.Entry.Kind == taskdef.KindTask {
				lock.RelateTask(pl.ID, pl.AgentID)
			}
			synced++
		}
	}
	for _, pl := range agents {
		send(pl)
	}
	if failure == nil { // tasks need their agents
		for _, pl := range tasks {
			send(pl)
			if failure != nil {
				break
			}
		}
	}
	printPushTable(e.stdout, rows)
	// Keep what did succeed even after a failure, so ids stay stable.
	if synced > 0 {
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.name, r.kind, r.id, r.result)
	}
	tw.Flush()
}

// ---- diff

func newTasksDiffCmd(e *env, f *tasksFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "diff",
		Short: "Show what push would change: local files against the lock and the remote definitions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, p, lock, err := f.project(e)
			if err != nil {
				return err
			}
			c, base, err := e.julepClient(cfg)
			if err != nil {
				return err
			}
			agents, tasks := deploy.Plan(p, lock)
			changed := 0
			for _, pl := range append(agents, tasks...) {
				d, err := diffOne(cmd.Context(), c, pl)
				if err != nil {
					return fmt.Errorf("diff %s %s: %w", pl.Entry.Kind, pl.Entry.Path, remoteErr(base, err))
				}
				if d != "" {
					changed++
					fmt.Fprint(e.stdout, d)
				}
			}
			if changed == 0 {
				fmt.Fprintln(e.stdout, "no changes: the remote definitions match the local files")
			}
			return nil
		},
	}
}

// diffOne renders one entry's unified diff (remote -> local), or "" when
// they match and the lock is current.
func diffOne(ctx context.Context, c *julep.Client, pl planned) (string, error) {
	local, err := comparable(pl.Entry.Definition(), nil)
	if err != nil {
		return "", err
	}
	remote := ""
	remoteName := "remote/" + pl.Entry.Path
	if pl.State == "new" {
		remoteName = "/dev/null"
	} else {
		var got any
		if pl.Entry.Kind == taskdef.KindAgent {
			got, err = c.GetAgent(ctx, pl.ID)
		} else {
			got, err = c.GetTask(ctx, pl.ID)
		}
		switch {
		case julep.IsNotFound(err):
			remoteName = "/dev/null"
		case err != nil:
			return "", err
		default:
			if remote, err = comparable(got, pl.Entry.Definition()); err != nil {
				return "", err
			}
		}
	}
	lockState := map[string]string{"new": "not in the lock", "changed": "changed since the last push", "unchanged": "unchanged since the last push"}[pl.State]
	if remote == local && pl.State == "unchanged" {
		return "", nil
	}
	head := fmt.Sprintf("# %s %s (%s, id %s): %s\n", pl.Entry.Kind, pl.Entry.Path, pl.Entry.Name(), pl.ID, lockState)
	if remote == local {
		return head + "# remote already matches the local file\n", nil
	}
	ud, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: difflib.SplitLines(remote), B: difflib.SplitLines(local),
		FromFile: remoteName, ToFile: "local/" + pl.Entry.Path, Context: 3,
	})
	if err != nil {
		return "", err
	}
	return head + ud, nil
}

// serverFields are set by Julep, not by a definition.
var serverFields = []string{"id", "created_at", "updated_at", "agent_id", "developer_id", "version", "default_system_template"}

// comparable renders a definition as sorted YAML with empty top-level values
// and server fields dropped, so a remote copy and a local file compare by
// content. local, when given, keeps server-filled keys the file sets itself.
func comparable(v any, local map[string]any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return "", err
	}
	for k, val := range m {
		drop := false
		for _, s := range serverFields {
			if k == s {
				_, inLocal := local[k]
				drop = local == nil || !inLocal
			}
		}
		switch x := val.(type) {
		case nil:
			drop = true
		case string:
			drop = drop || x == ""
		case bool:
			drop = drop || !x
		case []any:
			drop = drop || len(x) == 0
		case map[string]any:
			drop = drop || len(x) == 0
		}
		if drop {
			delete(m, k)
		}
	}
	var out strings.Builder
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(m); err != nil {
		return "", err
	}
	return out.String(), enc.Close()
}

// ---- list

func newTasksListCmd(e *env, f *tasksFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the remote agents and their tasks (marking those this project's lock knows)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
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
			tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "KIND\tID\tNAME\tUPDATED\tLOCAL")
			for _, a := range agents {
				fmt.Fprintf(tw, "agent\t%s\t%s\t%s\t%s\n", a.Id, a.Name, a.UpdatedAt.UTC().Format(time.RFC3339), orDash(local[a.Id]))
				ts, err := c.ListTasks(cmd.Context(), a.Id)
				if err != nil {
					tw.Flush()
					return fmt.Errorf("list tasks of agent %s: %w", a.Id, remoteErr(base, err))
				}
				for _, t := range ts {
					fmt.Fprintf(tw, "  task\t%s\t%s\t%s\t%s\n", t.Id, t.Name, t.UpdatedAt.UTC().Format(time.RFC3339), orDash(local[t.Id]))
				}
			}
			if len(agents) == 0 {
				fmt.Fprintln(tw, "(no agents)")
			}
			return tw.Flush()
		},
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
