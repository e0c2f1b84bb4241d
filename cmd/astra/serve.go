package main

import (
	"github.com/spf13/cobra"
)

// newServeCmd is replaced by the full wiring once the components land.
func newServeCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Serve the API, the live stream, sign-in, the dashboard and the dispatcher",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := e.loadConfig(nil)
			return err
		},
	}
}
