package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/astra-app/astra/internal/julep"
	"github.com/astra-app/astra/internal/taskdef"
)

func newExecutionsCmd(e *env) *cobra.Command {
	f := &julepFlags{}
	cmd := &cobra.Command{
		Use:     "executions",
		Short:   "Inspect executions: list, show one, print its transitions (the Julep console's views)",
		Example: "  astra executions list\n  astra executions show ID -o json\n  astra executions logs ID --follow",
		Args:    subcommandArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return &usageError{err: errors.New("executions needs a subcommand: list, show or logs")}
		},
	}
	f.add(cmd)
	cmd.AddCommand(newExecutionsListCmd(e, f), newExecutionsShowCmd(e, f), newExecutionsLogsCmd(e, f))
	return cmd
}

func newExecutionsListCmd(e *env, f *julepFlags) *cobra.Command {
	var task string
	var limit int
	out := outputFlag{}
	cmd := &cobra.Command{
		Use:     "list [--task ID|NAME]",
		Short:   "List recent executions, newest first (of --task, else of every task in the lock file)",
		Example: "  astra executions list\n  astra executions list --task responder --limit 5 -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.check(); err != nil {
				return err
			}
			c, base, cfg, err := f.connect(e)
			if err != nil {
				return err
			}
			var tasks []string
			if task != "" {
				id, err := resolveTask(cfg.TasksDir, task)
				if err != nil {
					return err
				}
				tasks = []string{id}
			} else {
				lock, err := taskdef.ReadLock(filepath.Join(cfg.TasksDir, taskdef.LockName))
				if err != nil {
					return err
				}
				for _, t := range lock.Tasks {
					tasks = append(tasks, t.ID)
				}
				if len(tasks) == 0 {
					return &usageError{err: fmt.Errorf("no tasks in %s: pass --task ID (or push the project first)", filepath.Join(cfg.TasksDir, taskdef.LockName))}
				}
			}
			var all []julep.Execution
			for _, id := range tasks {
				xs, err := c.ListExecutions(cmd.Context(), id, limit, 0)
				if err != nil {
					return fmt.Errorf("list executions of task %s: %w", id, remoteErr(base, err))
				}
				all = append(all, xs...)
			}
			// Newest first across tasks.
			slices.SortStableFunc(all, func(a, b julep.Execution) int { return b.CreatedAt.Compare(a.CreatedAt) })
			if len(all) > limit {
				all = all[:limit]
			}
			if out.structured() {
				if all == nil {
					all = []julep.Execution{}
				}
				return out.print(e.stdout, all)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tTASK\tSTATUS\tCREATED\tDURATION\tOUTBOX")
			for _, x := range all {
				outbox, _ := x.Metadata["outbox_id"].(string)
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", x.Id, x.TaskId, x.Status, x.CreatedAt.UTC().Format(time.RFC3339),
					duration(x), orDash(outbox))
			}
			if len(all) == 0 {
				fmt.Fprintln(tw, "(no executions)")
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&task, "task", "", "a task id, or a task name or path from the lock file")
	cmd.Flags().IntVar(&limit, "limit", 20, "how many executions to show (at most 100 per task)")
	out.register(cmd)
	return cmd
}

// duration is created to last update for a finished execution, "-" else.
func duration(x julep.Execution) string {
	if !julep.IsTerminal(x.Status) || x.UpdatedAt.Before(x.CreatedAt) {
		return "-"
	}
	return x.UpdatedAt.Sub(x.CreatedAt).Round(time.Millisecond).String()
}

func newExecutionsShowCmd(e *env, f *julepFlags) *cobra.Command {
	out := outputFlag{}
	cmd := &cobra.Command{
		Use:     "show ID",
		Short:   "Show one execution: status, input, metadata and output or error (in full)",
		Example: "  astra executions show 0b5e3c1a-2d4f-4a6b-8c7d-9e0f1a2b3c4d\n  astra executions show ID -o yaml",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			c, base, _, err := f.connect(e)
			if err != nil {
				return err
			}
			x, err := c.GetExecution(cmd.Context(), args[0])
			if err != nil {
				return fmt.Errorf("get execution %s: %w", args[0], remoteErr(base, err))
			}
			if out.structured() {
				return out.print(e.stdout, x)
			}
			w := e.stdout
			fmt.Fprintf(w, "id:          %s\n", x.Id)
			fmt.Fprintf(w, "task:        %s\n", x.TaskId)
			fmt.Fprintf(w, "status:      %s\n", x.Status)
			fmt.Fprintf(w, "created:     %s\n", x.CreatedAt.UTC().Format(time.RFC3339Nano))
			fmt.Fprintf(w, "updated:     %s\n", x.UpdatedAt.UTC().Format(time.RFC3339Nano))
			fmt.Fprintf(w, "duration:    %s\n", duration(*x))
			fmt.Fprintf(w, "transitions: %d\n", x.TransitionCount)
			writeJSON(w, "metadata", x.Metadata)
			writeJSON(w, "input", x.Input)
			if x.Error != "" {
				fmt.Fprintf(w, "error:       %s\n", x.Error)
			}
			if x.Output != nil {
				writeJSON(w, "output", x.Output)
			}
			return nil
		},
	}
	out.register(cmd)
	return cmd
}

func writeJSON(w io.Writer, label string, v any) {
	b, err := json.MarshalIndent(v, "  ", "  ")
	if err != nil {
		b = []byte(fmt.Sprint(v))
	}
	fmt.Fprintf(w, "%s:\n  %s\n", label, b)
}

func newExecutionsLogsCmd(e *env, f *julepFlags) *cobra.Command {
	var follow bool
	out := outputFlag{}
	cmd := &cobra.Command{
		Use:     "logs ID [--follow]",
		Short:   "Print an execution's transitions (type, step, label, output); --follow prints them as they arrive",
		Example: "  astra executions logs ID\n  astra executions logs ID --follow\n  astra executions logs ID -o json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			c, base, _, err := f.connect(e)
			if err != nil {
				return err
			}
			if out.structured() {
				if follow {
					return &usageError{err: errors.New("--follow prints lines as they come: use it with -o text")}
				}
				trs, err := c.ListTransitions(cmd.Context(), args[0])
				if err != nil {
					return fmt.Errorf("transitions of execution %s: %w", args[0], remoteErr(base, err))
				}
				if trs == nil {
					trs = []julep.Transition{}
				}
				return out.print(e.stdout, trs)
			}
			err = printTransitions(cmd.Context(), e.stdout, c, args[0], follow)
			if err != nil {
				return fmt.Errorf("transitions of execution %s: %w", args[0], remoteErr(base, err))
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing until the execution ends")
	out.register(cmd)
	return cmd
}

// printTransitions prints the transitions not printed yet; with follow it
// does so on every status change (Julep's transitions stream is not
// reliable, so the status stream is the trigger) until the execution ends.
func printTransitions(ctx context.Context, w io.Writer, c *julep.Client, id string, follow bool) error {
	seen := map[string]bool{}
	flush := func() error {
		trs, err := c.ListTransitions(ctx, id)
		if err != nil {
			return err
		}
		for _, t := range trs {
			if !seen[t.Id] {
				seen[t.Id] = true
				fmt.Fprintln(w, transitionLine(t))
			}
		}
		return nil
	}
	if err := flush(); err != nil {
		return err
	}
	if !follow {
		return nil
	}
	x, err := waitExecution(ctx, c, id, func(julep.ExecutionStatus, int) {
		if err := flush(); err != nil && ctx.Err() == nil {
			fmt.Fprintf(w, "(could not list transitions: %v)\n", err)
		}
	})
	if err != nil {
		return err
	}
	if err := flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "execution %s\n", x.Status)
	return nil
}

// transitionLine is one transition: time, type, workflow[step], label and
// a one-line summary of its output.
func transitionLine(t julep.Transition) string {
	step := fmt.Sprintf("%s[%d]", t.Current.Workflow, t.Current.Step)
	label := t.StepLabel
	if label == "" {
		label = "-"
	}
	out := ""
	if t.Output != nil {
		b, _ := json.Marshal(t.Output)
		out = string(b)
		if r := []rune(out); len(r) > 120 {
			out = string(r[:117]) + "..."
		}
	}
	return strings.TrimRight(fmt.Sprintf("%s  %-13s %-10s %-16s %s", t.CreatedAt.UTC().Format("15:04:05.000"), t.Type, step, label, out), " ")
}
