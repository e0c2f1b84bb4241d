package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
)

// outputFlag is -o/--output on every command that lists, shows, diffs, runs
// or validates: text for people, json or yaml for scripts.
type outputFlag struct{ format string }

func (o *outputFlag) register(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&o.format, "output", "o", "text", "output format: text, json or yaml")
}

func (o *outputFlag) check() error {
	switch o.format {
	case "", "text", "json", "yaml":
		return nil
	}
	return &usageError{err: fmt.Errorf("--output %q: want text, json or yaml", o.format)}
}

// structured reports whether the output is for a program.
func (o *outputFlag) structured() bool { return o.format == "json" || o.format == "yaml" }

// print writes v as JSON (indented, one document) or YAML.
func (o *outputFlag) print(w io.Writer, v any) error {
	if o.format == "yaml" {
		// Through JSON, so the field names are the JSON ones.
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		var generic any
		if err := json.Unmarshal(b, &generic); err != nil {
			return err
		}
		enc := yaml.NewEncoder(w)
		enc.SetIndent(2)
		if err := enc.Encode(generic); err != nil {
			return err
		}
		return enc.Close()
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
